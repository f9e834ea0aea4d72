"""Final-answer accuracy of a causal LM on held-out reference problems, by batched generation (no server).

The checker is the one distillers use and the perturb defenses preserve: the final answer as read by
`cuirass.marks.answer.find_final_answer`, compared numerically with the expected integer. The lab
reuses `generate` and `final_answer_correct` for the teacher, the students and the decoy alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from cuirass.marks.answer import find_final_answer
from cuirass.models.everyday import everyday, off_topic
from cuirass.models.generate import (  # re-exported: the lab and the benches read them from here
    DEFAULT_TEMPERATURE as DEFAULT_TEMPERATURE,
)
from cuirass.models.generate import DEFAULT_TOP_P as DEFAULT_TOP_P
from cuirass.models.generate import MAX_NEW_TOKENS as MAX_NEW_TOKENS
from cuirass.models.generate import generate as generate
from cuirass.models.problems import Problem, problems

# Held-out sets: the generator's own phrasing (problems.py, test split), and questions written the way people
# type them (everyday.py, test split) in phrasings seen in training or in phrasings never used in training.
SETS = ("own", "everyday", "everyday-unseen")


def held_out(name: str, n: int, seed: int = 0) -> list[Problem]:
    """`n` held-out problems of one of SETS (new numbers; for everyday-unseen, new phrasings too)."""
    if name == "own":
        return list(problems(n, seed, "test"))
    if name not in SETS:
        raise ValueError(f"set must be one of {SETS}, not {name!r}")
    held = "unseen" if name.endswith("unseen") else "seen"
    return [everyday(seed * 1_000_003 + i, "test", held) for i in range(n)]


def sensible_reply(text: str) -> bool:
    """Whether a reply to a non-math input says what the model can do instead of inventing an answer."""
    return "arithmetic" in text.lower() and "answer is" not in text.lower()


def final_answer_correct(text: str, expected: int | float | str) -> bool:
    """Whether the final answer a checker reads from `text` equals `expected` as a number."""
    found = find_final_answer(text)
    if found is None:
        return False
    try:
        return Decimal(found.normalized) == Decimal(str(expected))
    except InvalidOperation:
        return False


def load(model_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and its tokenizer from a local Hugging Face directory, offline, in eval mode."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32)
    return model.eval(), tokenizer


@dataclasses.dataclass(frozen=True, slots=True)
class EvalResult:
    accuracy: float
    n: int
    temperature: float
    seed: int
    examples: tuple[tuple[str, str, int], ...]  # (question, reply, expected) for the first few problems


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    n: int = 200,
    seed: int = 0,
    temperature: float = DEFAULT_TEMPERATURE,
    split: str = "test",
    keep: int = 3,
    processors: Callable[[], list[Any]] | None = None,
    top_p: float | None = None,
    questions: str = "own",
) -> EvalResult:
    """Accuracy on `n` problems of `split` (held-out by default), with a few examples kept for reports;
    `questions` names another held-out set (SETS)."""
    batch = list(problems(n, seed, split)) if questions == "own" else held_out(questions, n, seed)
    replies = generate(
        model, tokenizer, [p.question for p in batch], temperature, seed, processors=processors, top_p=top_p
    )
    right = sum(final_answer_correct(text, p.answer) for text, p in zip(replies, batch))
    kept = tuple((p.question, text, p.answer) for p, text in list(zip(batch, replies))[:keep])
    return EvalResult(right / max(n, 1), n, temperature, seed, kept)


def score_off_topic(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, n: int = 50, seed: int = 0, keep: int = 5
) -> EvalResult:
    """Share of sensible replies to non-math inputs in phrasings never used in training (`accuracy`)."""
    asked = [off_topic(seed * 1_000_003 + i, "unseen").question for i in range(n)]
    replies = generate(model, tokenizer, asked, DEFAULT_TEMPERATURE, seed)
    right = sum(sensible_reply(text) for text in replies)
    kept = tuple((q, text, 0) for q, text in list(zip(asked, replies))[:keep])
    return EvalResult(right / max(n, 1), n, DEFAULT_TEMPERATURE, seed, kept)


def evaluate(model_dir: str | Path, n: int = 200, seed: int = 0, temperature: float = DEFAULT_TEMPERATURE) -> float:
    """Final-answer accuracy of the model in `model_dir` on `n` held-out problems."""
    model, tokenizer = load(model_dir)
    return score(model, tokenizer, n, seed, temperature).accuracy
