"""`logit_watermark`: a keyed green-list watermark applied while the local engine samples.

    scores[v] += delta * count(key, previous h tokens, v)     count: green lists v is in (keyed.py)

    only where H(softmax(scores)) >= min_entropy                                   (entropy gate)

Kirchenbauer et al., 2023, "A Watermark for Large Language Models" (arXiv:2301.10226), the soft
red-list rule: the bias tilts sampling toward the green fraction gamma of the vocabulary without
forbidding anything, so high-entropy choices turn mostly green. The entropy gate follows SWEET (Lee et
al., 2023, "Who Wrote this Code? Watermarking for Code Generation", arXiv:2305.15060): where the model
is nearly sure (a digit the answer needs, the rest of a fixed phrase) the bias could only hurt the
answer and adds no evidence, so those steps are left alone, and the detector scores only the steps
where the model's own entropy passes the same threshold (entropy.py). Only tokens the model itself
finds plausible (probability >= min_prob) are boosted, so a large delta makes the model pick, among its
own candidates, the one green in the most lists, without ever promoting a token the model would not have
written (a strong bias on the whole vocabulary derails a small model: -33 points at delta 8). Keys are
per cohort (keyring purpose "logit_watermark"), so a detection also says which cohort the text left
through. Detect with `cuirass.marks.logit.detect`.

Options (policy config, `options: {logit_watermark: {...}}`); detection must use the same ones:
    gamma: float = 0.5    # green fraction of each list
    delta: float = 3.0    # logit bias per green list a token is in (higher: stronger and more visible)
    lists: int = 8        # green lists per context (1: the plain one-list scheme)
    context: int = 4      # h, previous tokens seeding the green list
    min_entropy: float = 0.5  # nats, of the model's raw next-token distribution; 0 marks every step
    min_prob: float = 0.02    # only tokens at least this likely are boosted; 0 boosts every green token
    protect_numbers: bool = true  # never bias (nor score) a token that holds a digit
"""

from __future__ import annotations

from typing import Any

from cuirass.marks.logit.entropy import number_tokens
from cuirass.marks.logit.keyed import (
    CONTEXT,
    DELTA,
    GAMMA,
    LISTS,
    MIN_ENTROPY,
    MIN_PROB,
    check_lists,
    green_count,
    green_count_list,
    threshold,
)
from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.base import LogitDefense, register_logit
from cuirass.upstream.base import LogitsProcessor


@register_logit
class LogitWatermark(LogitDefense):
    name = "logit_watermark"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.gamma = float(options.get("gamma", GAMMA))
        self.delta = float(options.get("delta", DELTA))
        self.context = int(options.get("context", CONTEXT))
        self.min_entropy = float(options.get("min_entropy", MIN_ENTROPY))
        self.protect_numbers = bool(options.get("protect_numbers", True))
        self.min_prob = float(options.get("min_prob", MIN_PROB))
        self.lists = check_lists(int(options.get("lists", LISTS)))
        threshold(self.gamma)  # validates gamma
        if self.delta < 0 or self.context < 1 or self.min_entropy < 0:
            raise ValueError("logit_watermark needs delta >= 0, context >= 1 and min_entropy >= 0")

    def processor(self, ctx: DefenseContext, tokenizer: Any) -> LogitsProcessor:
        protected = number_tokens(tokenizer) if self.protect_numbers else frozenset()
        return GreenListProcessor(
            ctx.key, self.gamma, self.delta, self.context, self.min_entropy, protected, self.min_prob, self.lists
        )


class GreenListProcessor:
    """Adds delta per green list to the logits of each step; positions with fewer than h previous tokens pass.
    Works on a batch too, so it can also be handed to transformers' `generate(logits_processor=[...])`."""

    def __init__(
        self,
        key: bytes,
        gamma: float,
        delta: float,
        context: int,
        min_entropy: float = 0.0,
        protected: frozenset[int] = frozenset(),
        min_prob: float = 0.0,
        lists: int = LISTS,
    ) -> None:
        self.key, self.gamma, self.delta, self.context, self.lists = key, gamma, delta, context, lists
        self.min_entropy, self.min_prob = min_entropy, min_prob
        self.protected = sorted(protected)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        from cuirass.marks.logit.entropy import entropy_of

        if input_ids.shape[-1] < self.context:
            return scores
        width = scores.shape[-1]
        probs = torch.softmax(scores.float(), dim=-1)  # one pass serves the entropy gate and the plausibility mask
        eligible = probs >= self.min_prob if self.min_prob > 0 else torch.ones_like(probs, dtype=torch.bool)
        if self.min_entropy > 0:
            eligible &= (entropy_of(probs) >= self.min_entropy).unsqueeze(-1)
        if self.protected:
            eligible[:, [t for t in self.protected if t < width]] = False
        out = scores.clone()
        # one row per sequence (HF generate batches); only the tokens that may be boosted are hashed: with
        # min_prob > 0 that is a few dozen per step instead of the whole vocabulary
        for row, ctx in enumerate(input_ids[:, -self.context :].tolist()):
            ids = eligible[row].nonzero().flatten()
            if 4 * len(ids) > width:  # most of the vocabulary: one dense pass is cheaper than indexing
                dense = torch.from_numpy(green_count_list(self.key, ctx, width, self.gamma, self.lists))
                out[row] += self.delta * dense.to(scores.device, scores.dtype) * eligible[row]
            elif len(ids):
                count = green_count(self.key, ctx, ids.cpu().numpy(), self.gamma, self.lists)
                out[row, ids] += self.delta * torch.from_numpy(count).to(scores.device, scores.dtype)
        return out
