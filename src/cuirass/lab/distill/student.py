"""The attacker's student: a model of the teacher's family and size (by default), trained from scratch on its harvest.

It uses the project's one training loop (`cuirass.lab.reference.train.fit`) on a stream that cycles over
exactly the examples the campaign received (question asked, reply received), with the teacher's tokenizer,
so the only thing that differs between conditions is the data. The answer-filtering attacker of condition D
first keeps only the examples whose final answer the checker finds right (it knows the answers of the
problems it generated), the filter the threat model's distillers run.

Evaluation: final-answer accuracy on held-out problems (greedy decoding, the checker of
`cuirass.lab.reference.evaluate`), and the per-token loss of the held-out problems' reference worked
solutions, a smooth measure that separates small students long before their accuracy does.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from cuirass.lab.distill.config import DistillConfig, StudentSpec
from cuirass.lab.reference import evaluate as ev
from cuirass.lab.reference.train import TrainConfig, build_model, fit, save
from cuirass.models.corpus import IGNORE, Worked, collate, encode

EVAL_SALT = 101  # held-out problems of the evaluation: a stream apart from the benign users'


@dataclasses.dataclass(frozen=True, slots=True)
class Example:
    """A worked example as the attacker stores it (`Worked`)."""

    question: str
    solution: str


def examples(harvest: Sequence[Any], filter_answers: bool = False, traces: bool = True) -> list[Example]:
    """What the attacker trains on: every harvested reply it received (refusals carry no text), optionally
    only those whose final answer is right; with `traces`, each reply's reasoning trace before its answer
    (the teacher's own format), else the answer alone."""
    out = []
    for x in harvest:
        text = x.solution if traces else x.reply
        if not x.request.harvest or not text:  # a stealthy account's cover traffic is not training data
            continue
        if filter_answers and not ev.final_answer_correct(x.reply, x.request.problem.answer):
            continue
        out.append(Example(x.question, text))
    return out


def train_config(config: DistillConfig) -> TrainConfig:
    s = config.student
    return TrainConfig(
        steps=config.train_steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup=max(1, config.train_steps // 20),
        seed=config.seed,
        hidden=s.hidden,
        layers=s.layers,
        heads=s.heads,
        ffn=s.ffn,
        decoy_step=0,
        threads=config.train_threads,
    )


def new_student(spec: StudentSpec, tokenizer: Any, tc: TrainConfig) -> Any:
    """A freshly initialised student: from a Hugging Face config file, or the reference family's sizes."""
    if spec.config_path is None:
        return build_model(tc, tokenizer)
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(spec.config_path)
    cfg = AutoConfig.from_pretrained(str(path.parent if path.is_file() else path), local_files_only=True)
    cfg.vocab_size = max(int(getattr(cfg, "vocab_size", 0) or 0), len(tokenizer))
    cfg.pad_token_id, cfg.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(tc.seed)
    return AutoModelForCausalLM.from_config(cfg)


def _cycle(data: Sequence[Worked], seed: int) -> Iterator[Worked]:
    """Epoch after epoch over the data, reshuffled each time (seeded)."""
    rng = random.Random(seed)
    order = list(range(len(data)))
    while True:
        rng.shuffle(order)
        for i in order:
            yield data[i]


def train(
    data: Sequence[Worked],
    tokenizer: Any,
    config: DistillConfig,
    out: Path | None = None,
    progress: bool = False,
    desc: str = "student",
) -> Any:
    """A student trained on `data` (empty data: the untrained student); saved to `out` when given."""
    torch.set_num_threads(config.train_threads)
    tc = train_config(config)
    model = new_student(config.student, tokenizer, tc)
    if data:
        fit(model, tokenizer, _cycle(data, config.seed), tc, progress, desc)
    model.eval()
    if out is not None:
        save(model, tokenizer, out)
    return model


def eval_problems(config: DistillConfig) -> list[Any]:
    """The held-out problems every student is scored on (a stream apart from the benign users')."""
    import itertools

    from cuirass.lab.distill.tasks import load

    return list(itertools.islice(load(config.task).stream(config.seed * 7 + EVAL_SALT, "test"), config.eval_n))


@torch.inference_mode()
def heldout_loss(model: Any, tokenizer: Any, data: Sequence[Worked], batch_size: int = 32) -> float:
    """Mean per-token cross-entropy (nats) of the reference worked solutions, answer tokens only."""
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id
    for start in range(0, len(data), batch_size):
        ids, mask, labels = collate([encode(tokenizer, p) for p in data[start : start + batch_size]], pad)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        total += float(loss)
        count += int((target != IGNORE).sum())
    return total / max(1, count)


def evaluate(model: Any, tokenizer: Any, config: DistillConfig) -> dict[str, Any]:
    """Greedy final-answer accuracy with its 95% Wilson interval and per-problem outcomes, and the held-out
    loss."""
    from cuirass.lab.distill.stats import wilson

    torch.set_num_threads(config.train_threads)
    tokenizer.padding_side = "left"
    batch = eval_problems(config)
    replies = ev.generate(
        model,
        tokenizer,
        [p.question for p in batch],
        temperature=0.0,
        seed=config.seed,
        max_new_tokens=config.max_tokens,
    )
    outcomes = [ev.final_answer_correct(r, p.answer) for r, p in zip(replies, batch, strict=True)]
    right = sum(outcomes)
    low, high = wilson(right, len(batch))
    loss = heldout_loss(model, tokenizer, batch)
    return {
        "accuracy": right / max(1, len(batch)),
        "correct": right,
        "n": len(batch),
        "ci95": [low, high],
        "outcomes": "".join("1" if ok else "0" for ok in outcomes),  # per problem, for paired intervals
        "heldout_loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "example": replies[0] if replies else "",
    }
