"""Writing events as the Parquet archive lays them out (docs/fleet.md), for the history tests.

One row per event, the event columns with the JSON ones (messages, params, response, actions,
shadowed) as JSON text and ts as float64; files DIR/day=YYYY-MM-DD/part-0.parquet. A stand-in
until the archive writer (`cuirass events export --format parquet`) lands beside this code.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cuirass.events.record import Event

JSON_COLUMNS = ("messages", "params", "response", "actions", "shadowed")
FLOATS = ("ts", "account_created", "latency_ms", "ttft_ms")


def schema() -> pa.Schema:
    fields = []
    for name in Event.__dataclass_fields__:
        kind = pa.float64() if name in FLOATS else pa.int64() if name == "status" else pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def write_archive(events: Iterable[Event], root: Path) -> list[Path]:
    """Write events (in the given order) into one Parquet file per UTC day; returns the files."""
    days: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        row = event.to_dict()
        for name in JSON_COLUMNS:
            if row[name] is not None:
                row[name] = orjson.dumps(row[name]).decode()
        day = datetime.datetime.fromtimestamp(event.ts, datetime.UTC).strftime("%Y-%m-%d")
        days.setdefault(day, []).append(row)
    files = []
    for day, rows in sorted(days.items()):
        path = root / f"day={day}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema()), path)
        files.append(path)
    return files
