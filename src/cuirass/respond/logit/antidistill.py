"""`antidistill`: antidistillation sampling, so that what the teacher writes is poor training data.

Savani et al., 2025, "Antidistillation Sampling" (arXiv:2504.13146). A student that trains on token v
after context x takes an SGD step θ' = θ + η ∇ log p_θ(v | x); to first order that changes its loss on
a task we care about, L(θ), by η ∇L(θ) · ∇ log p_θ(v | x). We estimate that directional derivative for
every candidate token at once with a proxy student and two copies of it moved along the task gradient:

    g     = ∇L(θ_proxy) / ||∇L(θ_proxy)||            L: the proxy's mean loss on the task's worked answers
    Δ(v)  = [log p_{θ+εg}(v | x) - log p_{θ-εg}(v | x)] / (2ε)          (central finite difference)
    scores[v] += strength · Δ(v)                                         (raw logits, before temperature)

so sampling favours tokens that would raise a distilled student's task loss. `strength` trades the
teacher's own accuracy against the damage (0 is the plain teacher); `cuirass lab distill` measures the
student side. g is computed once per (proxy, task, ε) and cached; each generated token then costs two
forward passes of the proxy (with their own KV caches).

Options (policy config, `options: {antidistill: {...}}`):
    proxy: str = "builtin:decoy"     # a small model sharing the teacher's tokenizer (same vocabulary)
    task: str = "builtin:reference"  # worked answers defining L: the reference problems, or a JSONL file of
                                     # {"question": ..., "solution": ...} (or {"prompt", "completion"}) lines
    task_size: int = 64              # examples in the gradient
    epsilon: float = 0.02            # step along g (unit norm) in parameter space
    strength: float = 0.1            # λ; the teacher loses under a point at 0.1, ~8 at 0.25 (BENCHMARKS.md)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from pathlib import Path
from typing import Any

from cuirass.engine.loader import returned_cache
from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.base import LogitDefense, register_logit
from cuirass.upstream.base import LogitsProcessor

PROXY, TASK, TASK_SIZE, EPSILON, STRENGTH = "builtin:decoy", "builtin:reference", 64, 0.02, 0.1
_BUILD_LOCK = threading.Lock()


@register_logit
class Antidistill(LogitDefense):
    name = "antidistill"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.proxy = str(options.get("proxy", PROXY))
        self.task = str(options.get("task", TASK))
        self.task_size = int(options.get("task_size", TASK_SIZE))
        self.epsilon = float(options.get("epsilon", EPSILON))
        self.strength = float(options.get("strength", STRENGTH))
        if self.epsilon <= 0 or self.task_size < 1 or self.strength < 0:
            raise ValueError("antidistill needs epsilon > 0, task_size >= 1 and strength >= 0")

    def processor(self, ctx: DefenseContext, tokenizer: Any) -> LogitsProcessor:
        pair = proxy_pair(self.proxy, self.task, self.task_size, self.epsilon)
        if len(tokenizer) > pair.vocab_size:
            raise ValueError(
                f"antidistill: the proxy {self.proxy} has a smaller vocabulary than the model it "
                "protects; the proxy must share the teacher's tokenizer"
            )
        return AntidistillProcessor(pair, self.strength, tokenizer.pad_token_id)


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyPair:
    """The proxy student moved by +ε·g and by -ε·g along its normalised task gradient."""

    plus: Any
    minus: Any
    epsilon: float
    vocab_size: int
    task_loss: float  # L(θ_proxy), for reports
    cache_arg: str  # forward()'s KV-cache argument in this transformers version (see engine.loader)


@functools.lru_cache(maxsize=4)
def _cached_pair(proxy: str, task: str, task_size: int, epsilon: float) -> ProxyPair:
    import copy

    import torch

    from cuirass.engine.loader import load_model

    lm = load_model(proxy, device="cpu")
    model = lm.model
    examples = _task_examples(task, task_size)
    ids, mask, labels = _batch(lm.tokenizer, examples)
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in params))
    plus, minus = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        for p, q_plus, q_minus in zip(model.parameters(), plus.parameters(), minus.parameters()):
            if p.grad is not None:
                step = epsilon * p.grad / norm
                q_plus.add_(step)
                q_minus.sub_(step)
    model.zero_grad(set_to_none=True)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    return ProxyPair(plus.eval(), minus.eval(), epsilon, vocab, float(loss.detach()), lm.cache_arg)


def proxy_pair(proxy: str, task: str, task_size: int, epsilon: float) -> ProxyPair:
    """The perturbed proxies for these options, built once per process (a gradient over the task set)."""
    with _BUILD_LOCK:
        return _cached_pair(proxy, task, task_size, epsilon)


@dataclasses.dataclass(frozen=True, slots=True)
class _Worked:
    question: str
    solution: str


def _task_examples(task: str, n: int) -> list[_Worked]:
    if task == "builtin:reference":  # the reference model's own task, held-out problems
        from cuirass.models.problems import problems

        return [_Worked(p.question, p.solution) for p in problems(n, seed=17, split="test")]
    out = []
    for line in Path(task).expanduser().read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(
                _Worked(row.get("question", row.get("prompt", "")), row.get("solution", row.get("completion", "")))
            )
        if len(out) == n:
            break
    if not out:
        raise ValueError(f"antidistill: the task file {task} holds no examples")
    return out


def _batch(tokenizer: Any, examples: list[_Worked]) -> tuple[Any, Any, Any]:
    """Right-padded (ids, mask, labels) with the loss on the answers only, as the students are trained."""
    from cuirass.models.corpus import collate, encode

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return collate([encode(tokenizer, ex) for ex in examples], pad)


class AntidistillProcessor:
    """Adds strength·Δ to the teacher's logits each step; keeps one KV cache per proxy copy.

    Works for the engine's single sequence and for transformers' batched, left-padded `generate`. In the
    engine, rows that share a proxy pair are advanced together (`call_many`): one forward pass of each proxy
    per step for all of them instead of one per row.
    """

    def __init__(self, pair: ProxyPair, strength: float, pad_id: int | None) -> None:
        self.pair, self.strength, self.pad_id = pair, strength, pad_id
        self._past: dict[str, Any] = {"plus": None, "minus": None}
        self._fed = 0

    @property
    def batch_key(self) -> int:
        return id(self.pair)  # one pair per (proxy, task, size, epsilon) in a process (proxy_pair)

    @staticmethod
    def call_many(procs: list[AntidistillProcessor], ids: list[Any], scores: Any) -> Any:
        """`proc(ids[i], scores[i])` for every row, the rows one token further than last time in one batch."""
        from cuirass.engine.kv import stackable

        stepping = [
            i
            for i, (p, x) in enumerate(zip(procs, ids, strict=True))
            if p.strength > 0
            and p._fed > 0
            and x.shape[-1] == p._fed + 1
            and all(stackable(p._past[n]) for n in ("plus", "minus"))
        ]
        out = scores.clone()
        for i in sorted(set(range(len(procs))) - set(stepping)):  # first call of a row, or nothing to do
            out[i : i + 1] = procs[i](ids[i], scores[i : i + 1])
        if stepping:
            delta = _step_together([procs[i] for i in stepping], [ids[i] for i in stepping])
            for j, i in enumerate(stepping):
                out[i : i + 1] = procs[i]._shift(scores[i : i + 1], delta[j : j + 1])
        return out

    def _shift(self, scores: Any, delta: Any) -> Any:
        """scores + strength·Δ (Δ may be wider than the teacher's logits: the proxy's vocabulary)."""
        return scores + self.strength * delta[:, : scores.shape[-1]].to(scores.device, scores.dtype)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.strength == 0:
            return scores
        if input_ids.shape[-1] < self._fed:  # a new sequence in the same processor: start over
            self._past, self._fed = {"plus": None, "minus": None}, 0
        padded = self.pad_id is not None and input_ids.shape[0] > 1  # only batched generation pads (left)
        mask = (input_ids != self.pad_id).long() if padded else torch.ones_like(input_ids)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        new = slice(self._fed, input_ids.shape[-1])
        logp = {}
        with torch.inference_mode():
            for name, model in (("plus", self.pair.plus), ("minus", self.pair.minus)):
                out = model(
                    input_ids=input_ids[:, new],
                    attention_mask=mask,
                    position_ids=positions[:, new],
                    use_cache=True,
                    **{self.pair.cache_arg: self._past[name]},
                )
                self._past[name] = returned_cache(out, self.pair.cache_arg)
                logp[name] = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        self._fed = input_ids.shape[-1]
        return self._shift(scores, _delta(logp, self.pair.epsilon))


def _delta(logp: dict[str, Any], epsilon: float) -> Any:
    """Δ: the central difference of the proxy's next-token log-probabilities along the task gradient."""
    return (logp["plus"] - logp["minus"]) / (2 * epsilon)


def _step_together(procs: list[AntidistillProcessor], ids: list[Any]) -> Any:
    """Δ for each row's newest token, both proxies run once over all rows (left-padded, stacked KV caches);
    each row keeps its own cache afterwards."""
    import torch

    from cuirass.engine.kv import from_layers, layers, stack

    pair = procs[0].pair
    fed = [p._fed for p in procs]
    width = max(fed)
    mask = torch.zeros((len(procs), width + 1), dtype=torch.long)
    for r, n in enumerate(fed):
        mask[r, width - n :] = 1
    last = torch.stack([x[0, -1] for x in ids]).unsqueeze(1)
    positions = torch.tensor([[n] for n in fed], dtype=torch.long)
    logp = {}
    with torch.inference_mode():
        for name, model in (("plus", pair.plus), ("minus", pair.minus)):
            stacked = stack([layers(p._past[name]) for p in procs], [width - n for n in fed])
            out = model(
                input_ids=last, attention_mask=mask, position_ids=positions, use_cache=True, **{pair.cache_arg: stacked}
            )
            cache = returned_cache(out, pair.cache_arg)
            kv = layers(cache)
            for r, (p, n) in enumerate(zip(procs, fed)):
                p._past[name] = from_layers(
                    [(k[r : r + 1, :, width - n :], v[r : r + 1, :, width - n :]) for k, v in kv]
                )
            logp[name] = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    for p in procs:
        p._fed += 1
    return _delta(logp, pair.epsilon)
