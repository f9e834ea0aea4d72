"""Cuirass's own event log: one event record per line, as the gateway exports it (events/record.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cuirass.events.record import Event

LACKS: tuple[str, ...] = ()
PARAMS = None  # every request parameter


def records(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield obj


def to_event(record: dict[str, Any], options: Any) -> Event:
    return Event.from_dict(record)
