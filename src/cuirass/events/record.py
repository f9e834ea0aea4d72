"""The event record: the one shape the gateway writes, `detect run` replays and the lab generates.

The first fourteen fields are the binding contract. The gateway adds a few operational
fields after them (status, latency, error, upstream); readers must ignore what they do not know.
The fields are listed in docs/architecture.md ("Contracts").
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from cuirass.actions import EVENT_ACTIONS

ANONYMOUS = "anonymous"  # the account of a request that never authenticated
ACTIONS = EVENT_ACTIONS  # the values of the `action` field ("pass" or an action of cuirass.actions)


@dataclasses.dataclass(slots=True)
class Event:
    ts: float
    request_id: str
    account: str
    endpoint: str
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    org: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    payment_fingerprint: str | None = None
    account_created: float | None = None
    response: dict[str, Any] | None = None
    action: str | None = None
    # Operational extensions (not part of the detection contract).
    status: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error: str | None = None
    upstream: str | None = None  # "principal" or "decoy"
    actions: list[str] | None = None  # every action carried out, in order (`action` is the first)
    shadowed: list[str] | None = None  # actions decided but only logged (shadow mode)
    cohort: str | None = None  # the watermark/canary cohort the response was keyed to

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}  # on the hot path (the spool): no fields() call

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Build an event from a decoded record, ignoring unknown keys; raises ValueError on a bad record."""
        try:
            return cls(**data)  # the usual record: only the event's own fields (JSON keys are strings)
        except TypeError:
            pass
        try:
            return cls(**{k: data[k] for k in _FIELDS if k in data})
        except TypeError as exc:  # missing required field
            raise ValueError(f"not an event record: {exc}") from None

    def prompt_text(self) -> str:
        """All message text, for detectors that look at content."""
        return "\n".join(message_text(m) for m in self.messages)


_FIELDS = tuple(f.name for f in dataclasses.fields(Event))


def message_text(message: dict[str, Any]) -> str:
    """The text of one OpenAI chat message (string content or a list of text parts).

    Only string parts count: events come from clients and old files, so any other shape reads as no text
    rather than an error that would stop the stage reading it.
    """
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(t for p in content if isinstance(p, dict) and isinstance(t := p.get("text"), str))
    return ""


def prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    """The `messages` of a /v1/completions request: one user message holding the prompt (a list of strings
    joined by newlines, any other list as its text); none for a prompt of another type."""
    if isinstance(prompt, list):
        prompt = "\n".join(prompt) if all(isinstance(p, str) for p in prompt) else str(prompt)
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else []


def content_hash(text: str) -> str:
    """What the hashes-only retention keeps of a text: enough to find repeats, nothing to read."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def write_jsonl(events: Iterable[Event | dict[str, Any]], out: IO[bytes]) -> int:
    n = 0
    for ev in events:
        out.write(orjson.dumps(ev.to_dict() if isinstance(ev, Event) else ev))
        out.write(b"\n")
        n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[Event]:
    """Stream events from a JSON-lines file; a bad line raises ValueError naming its line number."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            try:
                yield Event.from_dict(data)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from None
