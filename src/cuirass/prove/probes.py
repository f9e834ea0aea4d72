"""Probe prompts for an endpoint audit: what to ask a suspect model, and where the questions came from.

A radioactivity test is most powerful when the suspect is asked what its training data covered
(Sander et al. 2024, arXiv:2402.14904, sec. 5: prompts "similar to" the watermarked data). So the
default is what our own event log shows was harvested: the prompts whose answers went out keyed to a
cohort (the answers that carry our marks). When the log keeps no prompt text (retention "hashes", or
an empty log), the audit falls back to the built-in reference problems and the report says so. An
operator can also give a file of prompts. Whatever the source, the prompt set is hashed for the report:

    sha256 = SHA-256 of the JSON lines {"prompt": p}, one per prompt, in order (audit_log.canonical)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cuirass.audit_log import canonical
from cuirass.events.log import EventLog
from cuirass.prove.corpus import CorpusError
from cuirass.storage.stores import open_event_log

SCAN_LIMIT = 50_000  # most recent keyed events read when drawing prompts from the log


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeSet:
    prompts: tuple[str, ...]
    source: str  # "given" | "file" | "event-log" | "reference"
    where: str  # the file, the database, or the module the prompts came from
    note: str  # one sentence for the report

    @property
    def jsonl(self) -> bytes:
        return b"".join(canonical({"prompt": p}) + b"\n" for p in self.prompts)

    def describe(self, role: str = "probes") -> dict[str, Any]:
        """A row of the report's inputs table."""
        raw = self.jsonl
        return {
            "role": role,
            "path": self.where,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
            "format": f"jsonl ({self.source})",
            "n_texts": len(self.prompts),
        }

    def take(self, n: int) -> list[str]:
        """n prompts, cycling when the set is smaller (sampling makes repeated prompts answer differently)."""
        if not self.prompts:
            raise ValueError("no probe prompts")
        return [self.prompts[i % len(self.prompts)] for i in range(n)]


def _prompt_of(obj: Any) -> str | None:
    """A probe from a JSON value: a string, {"prompt"}, {"text"}, or {"messages"} (the last user turn)."""
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        return None
    for field in ("prompt", "text"):
        if isinstance(value := obj.get(field), str):
            return value
    if isinstance(obj.get("messages"), list):
        return last_user_text(obj["messages"])
    return None


def read_probes(path: Path) -> ProbeSet:
    """Prompts from a file: JSON lines ({"prompt": ...}, {"text": ...}, {"messages": [...]}, or a string)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    prompts = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            prompt = _prompt_of(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{no}: invalid JSON ({exc.msg}, column {exc.colno})") from None
        if not prompt:
            raise CorpusError(
                f"{path}:{no}: expected a prompt (a string, or an object with 'prompt', 'text' or 'messages')"
            )
        prompts.append(prompt)
    if not prompts:
        raise CorpusError(f"{path}: no prompts")
    return ProbeSet(tuple(prompts), "file", str(path), f"{len(prompts)} prompts from the probe file {path}.")


def last_user_text(messages: Any) -> str | None:
    """The text of the last user message, or None (hashed text, `sha256:...`, counts as none)."""
    if not isinstance(messages, list):
        return None
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = "".join(p.get("text", "") for p in c if isinstance(p, dict) and isinstance(p.get("text"), str))
            if isinstance(c, str) and c.strip() and not c.startswith("sha256:"):
                return c
            return None
    return None


def spread(prompts: list[str]) -> list[str]:
    """The prompts in a fixed pseudo-random order (by SHA-256) that visits every answer-signature window (the
    prompt's last word, `marks.signature.window`) before it visits any a second time: each window is one
    keyed draw of that test, so the first n probes carry as many as they can. The order depends on the
    prompts alone, never on a key, so every channel's null stays exact."""
    from cuirass.marks.signature import window

    ordered = sorted(dict.fromkeys(prompts), key=lambda p: hashlib.sha256(p.encode()).digest())
    seen: dict[str, int] = {}
    rank = []
    for p in ordered:
        w = window(p)
        rank.append(seen.get(w, 0))
        seen[w] = rank[-1] + 1
    return [p for _, _, p in sorted(zip(rank, range(len(ordered)), ordered))]


def harvested(events: EventLog, limit: int = SCAN_LIMIT) -> list[str]:
    """Distinct prompts whose answers went out keyed to a cohort, in a fixed pseudo-random order that covers
    the signature's windows first (`spread`), so any prefix is a sample spread over the whole log and the
    same log always gives the same probe set.
    """
    return spread([p for msgs in events.keyed_messages(limit) if (p := last_user_text(msgs)) is not None])


def reference(n: int) -> list[str]:
    """Questions of the built-in reference task (held-out split), the fallback probe set."""
    from cuirass.models.problems import problems

    return [p.question for p in problems(n, seed=0, split="test")]


def default_probes(engine: sa.Engine | None, n: int) -> ProbeSet:
    """What our log shows was harvested; the reference problems when the log holds no prompt text."""
    found = harvested(open_event_log(engine)) if engine is not None else []
    if found:
        where = engine.url.render_as_string(hide_password=True) if engine is not None else "-"
        note = (
            f"{len(found)} distinct prompts whose answers the event log shows went out keyed to a cohort "
            f"(harvested); {min(n, len(found))} used" + (", cycled" if n > len(found) else "") + "."
        )
        return ProbeSet(tuple(found[:n]), "event-log", f"event log {where}", note)
    return ProbeSet(
        tuple(spread(reference(max(4 * n, 200)))[:n]),  # a pool spread over the windows, as harvested ones are
        "reference",
        "cuirass.models.problems (split test, seed 0)",
        "The event log holds no prompt text of keyed answers (empty, or retention 'hashes'): "
        "the built-in reference problems were used instead.",
    )
