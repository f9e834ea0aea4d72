"""`cuirass events`: get the event log out, in the event record format."""

from __future__ import annotations

import sys

import click
import orjson
from tqdm import tqdm

from cuirass.cli.common import emit, store_options
from cuirass.config import Settings
from cuirass.storage.migrate import make_engine
from cuirass.storage.stores import open_event_log


@click.group()
def events() -> None:
    """Work with the event log."""


@events.command("export")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="JSON-lines file to write ('-' for stdout).",
)
@click.option("--since", type=float, help="Only events with ts >= this Unix time.")
@store_options
def export(settings: Settings, as_json: bool, out_path: str, since: float | None) -> None:
    """Write every event (one JSON object per line) to --out; `cuirass detect run` reads this."""
    events = open_event_log(make_engine(settings.database_url))
    total = events.count()
    fh = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115 - closed below unless stdout
    n = 0
    try:
        with tqdm(total=total, unit="ev", disable=out_path == "-" or not sys.stderr.isatty(), file=sys.stderr) as bar:
            for row in events.read(since=since):
                fh.write(orjson.dumps(row) + b"\n")
                n += 1
                bar.update()
    finally:
        if fh is not sys.stdout.buffer:
            fh.close()
    if out_path != "-":
        emit({"exported": n, "out": out_path}, as_json, lambda d: f"exported {d['exported']} events to {d['out']}")


COMMANDS = [events]
