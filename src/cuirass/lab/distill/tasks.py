"""What the campaign harvests and the students are scored on: the reference problems, or a JSONL task.

A task hands out problems (anything with .question, .solution and a numeric .answer, the `Worked` protocol
of `cuirass.models.corpus`) from a train and a test split, as endless seeded streams:

- `reference`: the procedural word problems the built-in model was trained on (train/test split by content);
- `jsonl:TRAIN,TEST` or `gsm8k:DIR` (DIR/gsm8k_train.jsonl, DIR/gsm8k_test.jsonl): one JSON object per line
  with `question` and `answer`, the answer a worked solution ending in `#### N` (GSM8K's format, which the
  answer checker reads). A stream visits the split in a seeded random order and starts over when it ends.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """A problem read from a file."""

    question: str
    solution: str
    answer: float


def _read(path: Path) -> list[Item]:
    items = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        m = _FINAL.search(row["answer"].strip())
        if m is None:
            raise ValueError(f"{path}:{no}: the answer does not end with '#### N'")
        value = float(m.group(1).replace(",", ""))
        items.append(Item(row["question"], row["answer"].strip(), int(value) if value.is_integer() else value))
    if not items:
        raise ValueError(f"{path}: no problems")
    return items


class JsonlTask:
    def __init__(self, train: Path, test: Path, name: str) -> None:
        self.name = name
        self.splits = {"train": _read(train), "test": _read(test)}

    def stream(self, seed: int, split: str) -> Iterator[Any]:
        items = self.splits[split]
        rng = random.Random(f"{self.name}:{seed}:{split}")
        while True:
            order = list(range(len(items)))
            rng.shuffle(order)
            yield from (items[i] for i in order)


class ReferenceTask:
    name = "reference"

    def stream(self, seed: int, split: str) -> Iterator[Any]:
        from cuirass.models.problems import problem

        i = 0
        while True:
            yield problem(seed * 1_000_003 + i, split)
            i += 1


def load(spec: str) -> ReferenceTask | JsonlTask:
    """`reference`, `gsm8k:DIR` or `jsonl:TRAIN,TEST`."""
    if spec == "reference":
        return ReferenceTask()
    kind, _, where = spec.partition(":")
    if kind == "gsm8k" and where:
        return JsonlTask(Path(where) / "gsm8k_train.jsonl", Path(where) / "gsm8k_test.jsonl", spec)
    if kind == "jsonl" and "," in where:
        train, test = where.split(",", 1)
        return JsonlTask(Path(train), Path(test), spec)
    raise ValueError(f"unknown task {spec!r}: reference, gsm8k:DIR or jsonl:TRAIN,TEST")
