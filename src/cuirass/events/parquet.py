"""The event log as Parquet files partitioned by day: one layout for the archive writer, export, and Spark.

    DIR/day=YYYY-MM-DD/<name>.parquet        (day: the UTC date of the event's ts; Hive-style partitions)

One row per event, with the columns of the `events` table except `seq`, in its order and with the types
of `SCHEMA` below: the JSON columns (messages, params, response, actions, shadowed) as JSON text, so
that any reader (Spark, DuckDB, pandas) gets the same values without a nested schema that differs from
event to event. `bus.archive` names its files by the stream sequences they hold
(`part-<first>-<last>.parquet`), `cuirass events export --format parquet` by its run; a name starting with
"." is a file being written (readers skip it, as Spark and pyarrow do). A writer killed mid-file leaves
its temporary behind, named by host and process; `sweep` removes those whose writer is gone.

pyarrow is imported on first use: the embedded install does not need it (the "fleet" extra has it).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from cuirass.events.log import Row

if TYPE_CHECKING:
    import pyarrow as pa

# (column, pyarrow type name, nullable): the contract readers depend on (docs/fleet.md, "The archive").
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("ts", "float64", False),
    ("request_id", "string", False),
    ("account", "string", False),
    ("org", "string", True),
    ("ip", "string", True),
    ("user_agent", "string", True),
    ("payment_fingerprint", "string", True),
    ("account_created", "float64", True),
    ("endpoint", "string", False),
    ("model", "string", False),
    ("messages", "string", False),  # JSON text
    ("params", "string", False),  # JSON text
    ("response", "string", True),  # JSON text
    ("action", "string", True),
    ("status", "int64", True),
    ("latency_ms", "float64", True),
    ("ttft_ms", "float64", True),
    ("error", "string", True),
    ("upstream", "string", True),
    ("actions", "string", True),  # JSON text
    ("shadowed", "string", True),  # JSON text
    ("cohort", "string", True),
)
JSON_COLUMNS = frozenset({"messages", "params", "response", "actions", "shadowed"})
_DEFAULTS: dict[str, Any] = {"messages": [], "params": {}}  # what a row without them (none should) stores
STALE_S = 3600.0  # a temporary of another host older than this is abandoned: no write takes that long


def schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(name, getattr(pa, kind)(), nullable) for name, kind, nullable in COLUMNS])


def day_of(ts: float) -> str:
    """The partition an event goes to: the UTC date of its event time."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def day_dir(root: Path, day: str) -> Path:
    return root / f"day={day}"


def to_table(rows: list[Row]) -> pa.Table:
    """The rows as a table of `schema()`: JSON columns encoded, numbers as their column's type."""
    import pyarrow as pa

    arrays = []
    for name, kind, _ in COLUMNS:
        if name in JSON_COLUMNS:
            default = _DEFAULTS.get(name)
            values: list[Any] = [_json(r.get(name, default)) for r in rows]
        elif kind == "float64":
            values = [None if r.get(name) is None else float(r[name]) for r in rows]
        else:
            values = [r.get(name) for r in rows]
        arrays.append(pa.array(values, getattr(pa, kind)()))
    return pa.Table.from_arrays(arrays, schema=schema())


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def write(path: Path, rows: list[Row]) -> None:
    """Write `rows` to `path` durably and atomically: a hidden temporary file, fsync, rename, fsync of the
    directory. A crash leaves the old file (or none) and at most a hidden temporary, never half a file."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_writer()}.tmp")
    pq.write_table(to_table(rows), tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def sweep(root: Path) -> int:
    """Remove the temporaries of writers that died mid-file: this host's whose process is gone, and any
    older than `STALE_S` (another host's, on shared storage). Returns how many it removed."""
    host, removed = socket.gethostname(), 0
    for tmp in root.glob("day=*/.*.tmp"):
        writer = tmp.name.removesuffix(".tmp").rsplit(".", 1)[-1]
        name, _, pid = writer.rpartition("-")
        try:
            mine = name == host and pid.isdigit()
            if (mine and not _alive(int(pid))) or time.time() - tmp.stat().st_mtime > STALE_S:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # finished or swept by someone else meanwhile
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def by_day(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(day_of(float(row["ts"])), []).append(row)
    return out


def files(root: Path) -> list[Path]:
    """The finished Parquet files under `root`, by day then name (for the archive: stream order)."""
    return sorted(p for p in root.glob("day=*/*.parquet") if not p.name.startswith((".", "_")))


def read(root: Path) -> Iterator[Row]:
    """Every event under `root` as an event row again (JSON columns decoded)."""
    import pyarrow.parquet as pq

    for path in files(root):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            for r in batch.to_pylist():
                yield {k: orjson.loads(v) if k in JSON_COLUMNS and v is not None else v for k, v in r.items()}
