"""Problems as chat conversations, and as token tensors for training (loss on the assistant's turn only).

The same `messages` function builds what a user sends through `/v1/chat/completions`, so the model is
trained on exactly the prompt format the gateway's local engine produces with the tokenizer's chat template.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import Protocol

import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

IGNORE = -100  # label value that the loss skips (the prompt)


class Worked(Protocol):
    """A question and its worked solution: a `Problem`, or an example a distiller harvested from a model."""

    @property
    def question(self) -> str: ...

    @property
    def solution(self) -> str: ...


def messages(problem: Worked | str) -> list[dict[str, str]]:
    """The user turn that asks the problem (a Problem or the question text)."""
    question = problem if isinstance(problem, str) else problem.question
    return [{"role": "user", "content": question}]


def conversation(problem: Worked) -> list[dict[str, str]]:
    """The full training conversation: the question and the worked solution."""
    return [*messages(problem), {"role": "assistant", "content": problem.solution}]


def prompt_ids(tokenizer: PreTrainedTokenizerBase, problem: Worked | str) -> list[int]:
    """Token ids of the prompt up to and including the assistant header, as the local engine would build it."""
    out = tokenizer.apply_chat_template(messages(problem), add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict | BatchEncoding):  # return_dict: the ids are its input_ids
        out = out["input_ids"]
    return list(out)


@dataclasses.dataclass(slots=True)
class Example:
    input_ids: list[int]
    labels: list[int]


def encode(tokenizer: PreTrainedTokenizerBase, problem: Worked) -> Example:
    """Prompt plus solution plus `<|end|>`; labels mask the prompt so only the answer is learned."""
    prompt = prompt_ids(tokenizer, problem)
    answer = tokenizer(problem.solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Example(prompt + answer, [IGNORE] * len(prompt) + answer)


def batches(
    tokenizer: PreTrainedTokenizerBase, stream: Iterator[Worked], batch_size: int, bucket: int = 16
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless batches of (input_ids, attention_mask, labels), right-padded, from a stream of fresh problems.

    Each chunk of `bucket` batches is sorted by length before it is cut, so a batch wastes little on padding;
    the chunk's batches are then yielded in a seeded random order.
    """
    rng = random.Random(0)
    pad_id = tokenizer.pad_token_id
    while True:
        chunk = [encode(tokenizer, next(stream)) for _ in range(batch_size * bucket)]
        chunk.sort(key=lambda ex: len(ex.input_ids))
        groups = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(groups)
        for group in groups:
            yield collate(group, pad_id)


def collate(group: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One right-padded batch (input_ids, attention_mask, labels) of encoded examples."""
    width = max(len(ex.input_ids) for ex in group)
    ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    labels = torch.full((len(group), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for row, ex in enumerate(group):
        ids[row, : len(ex.input_ids)] = torch.tensor(ex.input_ids)
        labels[row, : len(ex.labels)] = torch.tensor(ex.labels)
        mask[row, : len(ex.input_ids)] = 1
    return ids, mask, labels
