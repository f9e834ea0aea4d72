"""Dead letters: records a stage could not take as they were, set aside so that the stage goes on.

Every byte of a request is hostile input, and old rows and replayed files can be malformed too, so a
stage that reads records (the event writer, the spool replay, the detection service) must never stop on
one. It keeps what it can of the record here (one JSON object per line, with the error), counts it
(`cuirass_dead_letters_total{stage}` through `on_count`), logs it at most once per interval, and moves
on. A flood of bad records then costs a counter, a file line each and one log line per interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

MARK = "$cuirass_dropped"  # the key of the marker that stands in for a value JSON cannot hold
WIDE = 1000  # members of a container tried one by one when mending it; a wider one is replaced whole
LINE_CAP = 64 * 1024  # bytes of one dead letter's record; a longer one is kept as a truncated text
FILE_CAP = 64 * 1024 * 1024  # bytes before the file is rotated to `<name>.1` (the disk stays bounded)


def marker(why: str) -> dict[str, str]:
    """The small stand-in for a value that could not be kept, naming why."""
    return {MARK: why[:200]}


def _fits(value: Any, depth: int = 0) -> bool:
    """Whether orjson encodes `value` when it sits `depth` containers down (its nesting limit counts them)."""
    for _ in range(depth):
        value = [value]
    try:
        orjson.dumps(value)
        return True
    except TypeError:
        return False


def encodable(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(`row`, None) when orjson can encode it; otherwise (a copy that it can, the error).

    In a field that fails, each member (a message, a request parameter) that fails is replaced by a
    marker naming the error, so what detection reads of the rest stays as it was. The work is a few
    orjson calls per field, never a walk of the whole record in Python: this runs on the hot path, and
    the record is whatever a client sent.
    """
    try:
        orjson.dumps(row)
        return row, None
    except TypeError as exc:
        error = f"{type(exc).__name__}: {exc}"
    out: dict[str, Any] = {}
    for name, value in row.items():
        key = name if isinstance(name, str) else str(name)
        out[key] = value if _fits(value, 1) else _mend(value, error)
    return out, error


def json_line(row: dict[str, Any]) -> bytes:
    """`row` as one JSON line for an export; a field JSON cannot hold (an old or foreign row) is marked."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        kept = encodable(row)[0]
    try:
        return orjson.dumps(kept, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError as exc:
        return orjson.dumps(marker(f"{type(exc).__name__}: {exc}"), option=orjson.OPT_APPEND_NEWLINE)


def _mend(value: Any, why: str) -> Any:
    """A field (one level down in its row) with each member (two levels down) that cannot be encoded marked."""
    if isinstance(value, dict) and len(value) <= WIDE:
        return {k if isinstance(k, str) else str(k): v if _fits(v, 2) else marker(why) for k, v in value.items()}
    if isinstance(value, list) and len(value) <= WIDE:
        return [v if _fits(v, 2) else marker(why) for v in value]
    return marker(why)


class RateLimitedLog:
    """A warning at most once per `interval_s`, saying how many like it were held back meanwhile."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._next = 0.0
        self._held = 0
        self._lock = threading.Lock()

    def warning(self, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return
            held, self._held, self._next = self._held, 0, now + self.interval_s
        suffix = f" ({held} more like this in the last {self.interval_s:.0f}s)" if held else ""
        self.logger.warning(msg + suffix, *args, exc_info=exc_info)  # noqa: G003 - msg is the format, suffix has no %


class DeadLetters:
    """The dead-letter file of one stage, `<directory>/<stage>.jsonl` (0600: it may hold prompts)."""

    def __init__(
        self,
        directory: Path | None,
        stage: str,
        logger: logging.Logger,
        on_count: Callable[[], None] | None = None,
        log_interval_s: float = 10.0,
    ) -> None:
        self.path = None if directory is None else directory / f"{stage}.jsonl"
        self.stage = stage
        self.on_count = on_count
        self.count = 0
        self._log = RateLimitedLog(logger, log_interval_s)
        self._lock = threading.Lock()

    def add(self, error: str, *, record: Any = None, request_id: Any = None, seq: int | None = None) -> None:
        """Set one record aside with its error. Never raises: a full disk costs the line, not the stage."""
        self.count += 1
        if self.on_count is not None:
            try:
                self.on_count()
            except Exception:  # noqa: BLE001 - a metrics failure must not reach the stage
                pass
        where = (
            f"request {str(request_id)[:80]}"
            if request_id is not None
            else f"event seq {seq}"
            if seq is not None
            else "a record"
        )
        self._log.warning("%s: %s set aside (%s); see %s", self.stage, where, error[:300], self.path or "the log")
        if self.path is None:
            return
        entry: dict[str, Any] = {"ts": time.time(), "stage": self.stage, "error": error[:2000]}
        if request_id is not None:
            entry["request_id"] = str(request_id)[:200]
        if seq is not None:
            entry["seq"] = seq
        kept = record if _fits(record) else encodable(record)[0] if isinstance(record, dict) else marker(error)
        encoded = orjson.dumps(kept)
        if len(encoded) > LINE_CAP:
            kept = {"truncated": encoded[:LINE_CAP].decode(errors="ignore")}
        entry["record"] = kept
        try:
            self._append(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        except OSError as exc:
            self._log.warning("%s: cannot write the dead-letter file %s: %s", self.stage, self.path, exc)

    def _append(self, line: bytes) -> None:
        assert self.path is not None
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                if self.path.stat().st_size > FILE_CAP:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except FileNotFoundError:
                pass
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
