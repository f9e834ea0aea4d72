"""The input of a history run: which files, in which format, read as one DataFrame in input order.

`--events` is a glob ('DIR/*.parquet', 'archive/day=*/part-*.parquet'), a folder (every event
file under it), a file, or a URI Spark reads itself (hdfs://, s3a://, ...; globbed by Spark).
Formats: JSON lines (`cuirass events export`; .jsonl, .ndjson, .json, optionally compressed) and
Parquet (the archive, `cuirass events export --format parquet`: one row per event, the event
columns with messages, params, response, actions and shadowed as JSON text).

Each row carries its input position (file, block, row): event times can tie, and the
single-process replay keeps ties in input order (files in path order).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from cuirass.events.record import Event
from cuirass.spark.session import HistoryError

FORMATS = ("jsonl", "parquet")
_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_COMPRESSED = (".gz", ".bz2", ".zst", ".snappy", ".lz4", ".deflate")
EVENT_FIELDS = tuple(Event.__dataclass_fields__)


def format_of(path: str) -> str | None:
    """The format a file name implies (None when it implies none)."""
    name = path.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    return _SUFFIXES.get(os.path.splitext(name)[1])


def resolve(pattern: str, fmt: str | None = None) -> tuple[list[str], str]:
    """(files, format) of an --events argument; a HistoryError says what does not fit."""
    if "://" in pattern and not pattern.startswith("file://"):
        paths = [pattern]  # a cluster file system: Spark lists (and globs) it
    else:
        local = os.path.expanduser(pattern.removeprefix("file://"))
        if os.path.isdir(local):
            paths = sorted(p for p in glob.glob(os.path.join(local, "**", "*"), recursive=True) if format_of(p))
            if not paths:
                raise HistoryError(f"no event files (.parquet, .jsonl) under {pattern}")
        else:
            paths = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
            if not paths:
                raise HistoryError(f"no files match --events {pattern!r}")
        unreadable = [p for p in paths if not os.access(p, os.R_OK)]
        if unreadable:
            raise HistoryError(f"cannot read {unreadable[0]}: permission denied")
        paths = [str(Path(p).resolve()) for p in paths]
    if fmt is None:
        found = {format_of(p) for p in paths}
        if len(found) != 1 or None in found:
            raise HistoryError(
                f"cannot tell the format of --events {pattern!r} from its file names; pass --format jsonl or parquet"
            )
        fmt = found.pop()
    assert fmt is not None
    if fmt not in FORMATS:
        raise HistoryError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return paths, fmt


def read(spark: Any, paths: list[str], fmt: str) -> Any:
    """The input as a DataFrame: the event columns (Parquet) or `value`, the line (JSON lines),
    plus `file`, `block`, `row`: its position in the input."""
    from pyspark.sql import functions as F

    if fmt == "parquet":
        df = spark.read.parquet(*paths)
        have = set(df.columns)
        columns = [F.col(f) if f in have else F.lit(None).cast("string").alias(f) for f in EVENT_FIELDS]
    else:
        df = spark.read.text(paths)
        columns = [F.col("value")]
    return df.select(
        *columns,
        F.col("_metadata.file_path").alias("file"),
        F.col("_metadata.file_block_start").alias("block"),
        F.monotonically_increasing_id().alias("row"),
    )
