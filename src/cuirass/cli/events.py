"""`cuirass events`: get the event log out (JSON lines or Parquet), and archive the fleet's event bus."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from cuirass.cli.common import emit, store_options
from cuirass.config import Settings
from cuirass.events.deadletter import json_line
from cuirass.events.log import Row
from cuirass.storage.migrate import make_engine
from cuirass.storage.stores import open_event_log

EXPORT_CHUNK = 200_000  # rows held before they are written out as one Parquet file per day


@click.group()
def events() -> None:
    """Work with the event log."""


@events.command("export")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(writable=True),
    help="JSON-lines file to write ('-' for stdout); with --format parquet, an empty or new directory.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    show_default=True,
    help="parquet: DIR/day=YYYY-MM-DD/*.parquet, the archive's layout (docs/fleet.md).",
)
@click.option("--since", type=float, help="Only events with ts >= this Unix time.")
@store_options
def export(settings: Settings, as_json: bool, out_path: str, fmt: str, since: float | None) -> None:
    """Write every event to --out; `cuirass detect run` reads the JSON lines, Spark the Parquet files."""
    events = open_event_log(make_engine(settings.database_url))
    total = events.count()
    if fmt == "parquet":
        n = _export_parquet(events.read(since=since), Path(out_path), total)
    else:
        n = _export_jsonl(events.read(since=since), out_path, total)
    if out_path != "-":
        emit({"exported": n, "out": out_path}, as_json, lambda d: f"exported {d['exported']} events to {d['out']}")


def _bar(total: int, quiet: bool) -> tqdm[Any]:
    return tqdm(total=total, unit="ev", disable=quiet or not sys.stderr.isatty(), file=sys.stderr)


def _export_jsonl(rows: Any, out_path: str, total: int) -> int:
    fh = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115 - closed below unless stdout
    n = 0
    try:
        with _bar(total, out_path == "-") as bar:
            for row in rows:
                fh.write(json_line(row))
                n += 1
                bar.update()
    finally:
        if fh is not sys.stdout.buffer:
            fh.close()
    return n


def _export_parquet(rows: Any, out: Path, total: int) -> int:
    """Parquet files by day, `export-<run>-<k>.parquet` (k counts the files of this run, in log order)."""
    from cuirass.events import parquet

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise click.ClickException(f"{out} is not an empty directory; export Parquet into a new one")
    run = int(time.time() * 1000)
    n = k = 0
    chunk: list[Row] = []

    def flush() -> None:
        nonlocal k
        for day, part in parquet.by_day(chunk).items():
            k += 1
            parquet.write(parquet.day_dir(out, day) / f"export-{run}-{k:05d}.parquet", part)
        chunk.clear()

    with _bar(total, False) as bar:
        for row in rows:
            chunk.append(row)
            n += 1
            bar.update()
            if len(chunk) >= EXPORT_CHUNK:
                flush()
        flush()
    out.mkdir(parents=True, exist_ok=True)  # an empty log still leaves the directory it was asked for
    return n


@events.command("archive")
@click.option(
    "--sql/--no-sql", default=True, show_default=True, help="Store events in the SQL event log (storage.url)."
)
@click.option(
    "--parquet",
    "parquet_dir",
    type=click.Path(file_okay=False, writable=True),
    help="Also (or, with --no-sql, only) write Parquet files by day under this directory.",
)
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="Events per batch.")
@click.option(
    "--durable", default="cuirass-archive", show_default=True, help="Name of the JetStream consumer (its position)."
)
@click.option(
    "--ack-wait",
    type=click.FloatRange(1),
    default=30.0,
    show_default=True,
    help="Seconds before a batch delivered and not acknowledged (its archive died) is delivered again; "
    "set when the consumer is created.",
)
@click.option(
    "--until-idle",
    type=float,
    default=None,
    help="Exit once no event has arrived for this many seconds and none is pending "
    "(default: run until SIGTERM or Ctrl-C).",
)
@store_options
def archive(
    settings: Settings,
    as_json: bool,
    sql: bool,
    parquet_dir: str | None,
    batch: int,
    durable: str,
    ack_wait: float,
    until_idle: float | None,
) -> None:
    """Store the event bus (events.bus) in SQL and/or Parquet, acknowledging each batch once it is durable.

    Run one per stream; a restart resumes where the last acknowledged batch ended, and what was written
    but not acknowledged is not stored twice (docs/fleet.md, "The archive")."""
    if not settings.events.bus:
        raise click.ClickException("events.bus is not set: there is no bus to archive (set CUIRASS_EVENTS__BUS)")
    if not sql and not parquet_dir:
        raise click.ClickException("nothing to write: give --parquet DIR, or leave --sql on")
    from cuirass.bus.archive import Archiver, ParquetTarget
    from cuirass.bus.jetstream import Connection
    from cuirass.events.deadletter import DeadLetters
    from cuirass.events.writer import EventWriter

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger("cuirass.archive")
    letters = DeadLetters(settings.data_dir / "dead-letters", "archive", logger)
    writer = EventWriter(open_event_log(make_engine(settings.database_url)), dead_letters=letters) if sql else None
    target = ParquetTarget(Path(parquet_dir)) if parquet_dir else None
    if target is not None and target.swept:
        click.echo(f"removed {target.swept} temporary files left by an archive that was killed mid-write", err=True)
    conn = Connection(settings.events.bus, settings.events.bus_stream, name="cuirass-archive")
    archiver = Archiver(
        conn, sql=writer, parquet_target=target, dead_letters=letters, durable=durable, batch=batch, ack_wait_s=ack_wait
    )

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())  # the batch in hand is finished and acknowledged first

    def progress(s: Any) -> None:
        click.echo(
            f"archived {s.messages} events (sql: {s.sql_new} new, parquet: {s.parquet_rows} rows "
            f"in {s.parquet_files} files), stream seq {s.last_seq}",
            err=True,
        )

    try:
        stats = archiver.run(stop, until_idle_s=until_idle, progress=progress)
    finally:
        archiver.close()
    emit(
        stats.as_dict(),
        as_json,
        lambda d: (
            f"archived {d['messages']} events through stream seq {d['last_seq']} in {d['seconds']}s: "
            f"sql {d['sql_new']} new, parquet {d['parquet_rows']} rows in {d['parquet_files']} files "
            f"({d['parquet_skipped']} already held), {d['dead_letters']} dead letters"
        ),
    )


COMMANDS = [events]
