"""Request logs that `cuirass detect run --format NAME` reads, each mapped to the event record.

One module per format, each with the same four names:

- `LACKS`: the event fields the format has no place for (left empty, never invented);
- `PARAMS`: the request parameters it carries (None: all of them);
- `records(obj)`: the records inside one decoded JSON line (an OTLP export holds many spans);
- `to_event(record, options)`: one record as an Event; ValueError for a malformed record,
  `NotARequest` for a well-formed one that holds no model request.

`read` drives any of them over a JSON-lines file. Every line and record is hostile input: a malformed one
is skipped and counted in the `Reading` (for Cuirass's own events, whose malformed lines mean a wrong or
corrupt file, `strict` makes it an error instead, as `detect run` has always done).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from cuirass.events.formats import cuirass, litellm, openai_jsonl, otel
from cuirass.events.formats.fields import NotARequest
from cuirass.events.record import Event

FORMATS: dict[str, ModuleType] = {
    "cuirass": cuirass,
    "otel": otel,
    "litellm": litellm,
    "openai-jsonl": openai_jsonl,
}

# The event fields a log may leave empty; `Reading.lacking` lists those no record filled.
_OPTIONAL = (
    "org",
    "ip",
    "user_agent",
    "payment_fingerprint",
    "account_created",
    "messages",
    "params",
    "response",
    "action",
)
SAMPLES = 10  # malformed records described in full; the rest are only counted
# What a mapping raises on a shape it did not expect (a missing field, a wrong type, a start time of 400 digits).
_MALFORMED = (ValueError, TypeError, AttributeError, LookupError, ArithmeticError)


@dataclasses.dataclass
class Options:
    """What the reader is told about a foreign log: where the account id sits (format-specific; see
    `--account-field`)."""

    account_field: str | None = None


@dataclasses.dataclass
class Reading:
    """What one pass over a log found besides its events: the counts and the fields no record filled."""

    format: str
    events: int = 0
    malformed: int = 0
    ignored: int = 0  # well-formed records that hold no model request
    samples: list[str] = dataclasses.field(default_factory=list)
    filled: set[str] = dataclasses.field(default_factory=set)

    def lacking(self) -> list[str]:
        """Event fields this log did not have: those its format has no place for, and those no record filled."""
        lacks = set(FORMATS[self.format].LACKS)
        if self.events:
            lacks |= {name for name in _OPTIONAL if name not in self.filled}
        return sorted(lacks)

    def summary(self) -> dict[str, Any]:
        params = FORMATS[self.format].PARAMS
        return {
            "format": self.format,
            "lacking": self.lacking(),
            "params_carried": None if params is None else sorted(params),
            "malformed": self.malformed,
            "ignored": self.ignored,
        }

    def merge(self, other: Reading, on_bad: Callable[[str], None] | None = None) -> None:
        """Add what another pass (over another span of the same log) found; `on_bad` hears the samples kept."""
        self.events += other.events
        self.malformed += other.malformed
        self.ignored += other.ignored
        self.filled |= other.filled
        for note in other.samples[: SAMPLES - len(self.samples)]:
            self.samples.append(note)
            if on_bad is not None:
                on_bad(note)

    def _note(self, event: Event) -> None:
        self.events += 1
        if len(self.filled) < len(_OPTIONAL):
            self.filled.update(name for name in _OPTIONAL if getattr(event, name))

    def _bad(self, where: str, exc: Exception, on_bad: Callable[[str], None] | None) -> None:
        self.malformed += 1
        if len(self.samples) < SAMPLES:
            note = f"{where}: {str(exc)[:200]}"
            self.samples.append(note)
            if on_bad is not None:
                on_bad(note)


def read(
    path: Path,
    reading: Reading,
    options: Options | None = None,
    *,
    strict: bool = False,
    progress: Callable[[int], object] | None = None,
    on_bad: Callable[[str], None] | None = None,
    span: Span | None = None,
) -> Iterator[Event]:
    """Stream the events of a JSON-lines log in `reading.format`, one line at a time (memory bounded by the
    longest line). With `strict`, a malformed record raises ValueError naming its line instead. With `span`,
    only the lines of that byte range (see `spans`)."""
    fmt = FORMATS[reading.format]
    options = options or Options()
    start, end, first_line = (span.start, span.end, span.first_line) if span is not None else (0, None, 1)
    with open(path, "rb") as fh:
        fh.seek(start)
        offset = start
        for lineno, line in enumerate(fh, first_line):
            if end is not None:
                if offset >= end:
                    break
                offset += len(line)
            if progress is not None:
                progress(len(line))
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("expected a JSON object")
                records = list(fmt.records(obj))
            except (orjson.JSONDecodeError, ValueError) as exc:
                message = f"invalid JSON ({exc})" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
                if strict:
                    raise ValueError(f"{path}:{lineno}: {message}") from None
                reading._bad(f"{path}:{lineno}", ValueError(message), on_bad)
                continue
            for i, record in enumerate(records):
                try:
                    event = checked(fmt.to_event(record, options))
                except NotARequest:
                    reading.ignored += 1
                    continue
                except _MALFORMED as exc:
                    at = f"{path}:{lineno}" + ("" if len(records) == 1 else f" record {i + 1}")
                    if strict:
                        raise ValueError(f"{at}: {exc}") from None
                    reading._bad(at, exc, on_bad)
                    continue
                reading._note(event)
                yield event


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """Whole lines of a log: bytes [start, end), the first of them line number `first_line`."""

    start: int
    end: int
    first_line: int


def spans(path: Path, size: int) -> Iterator[Span]:
    """The log cut into spans of about `size` bytes at line ends, in order (the file is read once, by blocks)."""
    start, line = 0, 1
    with open(path, "rb") as fh:
        while True:
            block = fh.read(size)
            if not block:
                return
            if len(block) < size:  # the last span
                cut = len(block)
            else:
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # a line longer than `size`: read on to its end
                    block += fh.readline()
                    cut = len(block)
            fh.seek(start + cut)
            yield Span(start, start + cut, line)
            line += block.count(b"\n", 0, cut)
            start += cut


def checked(event: Event) -> Event:
    """The event record's own rules, whatever the format: the detector relies on these types."""
    if isinstance(event.ts, bool) or not isinstance(event.ts, (int, float)) or not math.isfinite(event.ts):
        raise ValueError(f"'ts' must be a number (Unix seconds), got {event.ts!r}")
    if not isinstance(event.account, str) or not event.account:
        raise ValueError("'account' must be a non-empty string")
    if not isinstance(event.messages, list):
        raise ValueError("'messages' must be a list of chat messages")
    if event.params is not None and not isinstance(event.params, dict):
        raise ValueError("'params' must be an object")
    return event
