"""Events written as the archive lays them out (`cuirass.events.parquet`, docs/fleet.md), for the history tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cuirass.events import parquet
from cuirass.events.record import Event
from cuirass.events.store import to_row


def write_archive(events: Iterable[Event], root: Path) -> list[Path]:
    """Write events (in the given order) into one Parquet file per UTC day, with the archive's own writer."""
    files = []
    for day, rows in sorted(parquet.by_day(to_row(e) for e in events).items()):
        path = parquet.day_dir(root, day) / "part-0.parquet"
        parquet.write(path, rows)
        files.append(path)
    return files
