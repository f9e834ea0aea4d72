"""`cuirass detect run` and `cuirass detect calibrate`: offline detection over an event log."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from cuirass.cli.common import location_options
from cuirass.events.formats import FORMATS, SAMPLES, Options, Reading
from cuirass.events.record import Event

if TYPE_CHECKING:
    from cuirass.detect.digest import Digest

_EXISTING = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
_OUT = click.Path(dir_okay=False, writable=True, path_type=Path)


_account_field = click.option(
    "--account-field",
    default=None,
    metavar="NAME",
    help="Where a foreign log names the account: otel, a span or resource attribute (default user.id, then "
    "enduser.id); litellm, a column or metadata.KEY (default user, then metadata.user_api_key_user_id, then "
    "api_key); openai-jsonl, a top-level key (default account, then user).",
)


_jobs = click.option(
    "--jobs",
    type=click.IntRange(min=0),
    default=None,
    help="Processes that read and digest the log beside the one that scores it (local engine; 0: none, the "
    "scoring process digests; default: one per core, at most 4, at a lower priority than the scoring process). "
    "The result is the same whatever the number.",
)


@click.group()
def detect() -> None:
    """Score accounts and campaigns for distillation in an event log (JSON lines), Cuirass's own or another
    system's request log (`detect run --format`)."""


def _bar(path: Path, progress: bool) -> Any:
    """A byte-progress bar over reading a log (stderr)."""
    from tqdm import tqdm

    return tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=f"read {path.name}",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
    )


def _digests(
    path: Path,
    reading: Reading,
    options: Options,
    jobs: int,
    bar: Any,
    on_skip: Callable[[Event, Exception], None] | None = None,
    skipped: list[int] | None = None,
) -> Iterator[Digest]:
    """The log's digests in file order, read by `jobs` digesting processes (detect.parallel), with progress on
    `bar`. A malformed record of a foreign log is skipped, counted in `reading` and shown (the first few); one
    of Cuirass's own events raises ValueError naming its line."""
    from cuirass.detect.parallel import digest_log

    return digest_log(
        path,
        reading,
        options,
        jobs=jobs,
        strict=reading.format == "cuirass",
        progress=bar.update,
        on_bad=functools.partial(_bad_record, reading),
        on_skip=on_skip,
        skipped=skipped,
    )


def _bad_record(reading: Reading, note: str) -> None:
    last = len(reading.samples) == SAMPLES
    click.echo(
        f"warning: skipped a malformed record: {note}" + (" (further ones are only counted)" if last else ""),
        err=True,
    )


def _load_calibration(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from cuirass.detect.engine import threshold_from

    try:
        calibration = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(calibration, dict):
        raise click.ClickException(f"{path}: expected a JSON object with a 'threshold'")
    try:
        threshold_from(calibration)
    except ValueError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    return calibration


def _write(path: Path, data: Any) -> None:
    try:
        path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


def _local_report(
    events_arg: str,
    calibration: dict[str, Any] | None,
    campaign_interval: float,
    presorted: bool,
    progress: bool,
    reading: Reading,
    options: Options,
    jobs: int | None,
) -> dict[str, Any]:
    from tqdm import tqdm

    from cuirass.detect.parallel import default_jobs
    from cuirass.detect.replay import detect, report_of

    jobs = default_jobs() if jobs is None else jobs
    events_path = Path(events_arg)
    if not events_path.is_file():
        hint = " (globs, folders and Parquet need --engine spark)" if any(c in events_arg for c in "*?[") else ""
        raise click.BadParameter(f"File {events_arg!r} does not exist{hint}.", param_hint="'--events'")
    if not os.access(events_path, os.R_OK):
        raise click.BadParameter(f"File {events_arg!r} is not readable.", param_hint="'--events'")
    shown = [0]
    skipped = [0]

    def skip(event: Event, exc: Exception) -> None:  # a record that cannot be scored: reported, not fatal
        shown[0] += 1
        if shown[0] <= 10:
            click.echo(
                f"warning: skipped event {str(event.request_id)[:80]!r} (account {str(event.account)[:80]!r}): "
                f"{type(exc).__name__}: {str(exc)[:200]}"
                + (" (further ones are only counted)" if shown[0] == 10 else ""),
                err=True,
            )

    bar = _bar(events_path, progress)
    # Scoring that cannot overlap reading (one process, or a log out of event-time order) has its own bar.
    scoring = tqdm(desc="score", unit="ev", unit_scale=True, file=sys.stderr, disable=not progress, delay=1.0)
    digests = _digests(events_path, reading, options, jobs, bar, skip, skipped)
    try:
        detector = detect(
            digests,
            calibration=calibration,
            campaign_interval_s=campaign_interval,
            presorted=presorted,
            progress=scoring.update,
            overlap=jobs > 0,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
        scoring.close()
    return report_of(detector, skipped[0])


def _spark_report(
    events_arg: str,
    fmt: str | None,
    master: str,
    partitions: int | None,
    confs: tuple[str, ...],
    calibration: dict[str, Any] | None,
    campaign_interval: float,
    progress: bool,
) -> dict[str, Any]:
    """The same report from Apache Spark (cuirass.spark); every failure is one line, not a JVM trace."""
    from cuirass.spark.session import HistoryError

    conf = {}
    for item in confs:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'--conf'")
        conf[key.strip()] = value.strip()
    try:
        from cuirass.spark import history, session, source

        paths, fmt = source.resolve(events_arg, fmt)
        spark, created = session.start(master, conf)
        try:
            say = (lambda line: click.echo(f"spark {line}", err=True)) if progress else None
            result = history.run(
                spark,
                paths,
                fmt,
                calibration=calibration,
                campaign_interval_s=campaign_interval,
                partitions=partitions,
                progress=say,
            )
        finally:
            if created:
                spark.stop()
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None
    for i, sample in enumerate(result.skipped_samples):
        click.echo(
            f"warning: skipped a record: {sample}" + (" (further ones are only counted)" if i == 9 else ""), err=True
        )
    return result.report


@detect.command("run")
@click.option(
    "--events",
    "events_arg",
    required=True,
    help="Event log to replay: a JSON-lines file (local engine); with --engine spark also a glob, folder or "
    "URI of JSON-lines or Parquet files (quote globs: 'DIR/*.parquet').",
)
@click.option("--out", "out", required=True, type=_OUT, help="Detection report (JSON) to write.")
@click.option(
    "--calibration",
    "calibration_path",
    type=_EXISTING,
    default=None,
    help="calibration.json from `detect calibrate` (default: the built-in threshold).",
)
@click.option(
    "--campaign-interval",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=1.0),
    help="Event-time seconds between campaign jobs.",
)
@click.option(
    "--presorted",
    is_flag=True,
    help="The log is in event-time order: stream it instead of buffering it (for logs too big to hold; local engine).",
)
@_jobs
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="local: one process; spark: Apache Spark (pip install 'cuirass[spark]'), the same report.",
)
@click.option(
    "--master", default="local[*]", show_default=True, help="Spark master (--engine spark), e.g. spark://HOST:7077."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*FORMATS, "jsonl", "parquet"]),
    default="cuirass",
    show_default=True,
    help="What the log is: cuirass (Cuirass's own events), otel (OpenTelemetry GenAI spans as OTLP/JSON, or "
    "one span per line), litellm (LiteLLM spend-log rows as JSON lines), openai-jsonl (OpenAI request/response "
    "bodies with caller metadata; README, 'Detection on logs you already have'). The summary (printed and in the report) "
    "lists the event fields the log lacked. jsonl, parquet: Cuirass's events in that file type (--engine spark, when "
    "the file names do not tell).",
)
@_account_field
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="Spark partitions of the accounts (default: 2 per core, more for a long history: at most 1M events each).",
)
@click.option(
    "--conf",
    "confs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Spark setting (repeatable), e.g. spark.executor.memory=4g.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(
    events_arg: str,
    out: Path,
    calibration_path: Path | None,
    campaign_interval: float,
    presorted: bool,
    jobs: int | None,
    engine: str,
    master: str,
    fmt: str,
    account_field: str | None,
    partitions: int | None,
    confs: tuple[str, ...],
    progress: bool,
    as_json: bool,
) -> None:
    """Replay an event log causally and write the detection report (accounts and campaigns).

    Besides Cuirass's own events it reads the request logs a provider may already keep (--format), mapped
    to the event record; fields a log lacks stay empty and the summary names them.
    """
    calibration = _load_calibration(calibration_path)
    started = time.perf_counter()
    if account_field is not None and fmt in ("cuirass", "jsonl", "parquet"):
        raise click.UsageError("--account-field is for --format otel, litellm or openai-jsonl")
    reading = Reading(fmt if fmt in FORMATS else "cuirass")
    if engine == "spark":
        if presorted:
            raise click.UsageError("--presorted is for --engine local (Spark sorts by itself)")
        if fmt not in ("cuirass", "jsonl", "parquet"):
            raise click.UsageError(f"--format {fmt} is read by --engine local only")
        spark_fmt = None if fmt == "cuirass" else fmt
        report = _spark_report(
            events_arg, spark_fmt, master, partitions, confs, calibration, campaign_interval, progress
        )
    else:
        if fmt == "parquet":
            raise click.UsageError("Parquet logs need --engine spark")
        options = Options(account_field=account_field)
        report = _local_report(events_arg, calibration, campaign_interval, presorted, progress, reading, options, jobs)
    if reading.format != "cuirass":  # what a foreign log was and lacked travels with the report
        report["summary"].update(reading.summary())
    _write(out, report)
    summary = dict(
        report["summary"], threshold=report["threshold"], out=str(out), seconds=round(time.perf_counter() - started, 2)
    )
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(
        f"replayed {summary['events']:,} events from {summary['accounts']:,} accounts "
        f"in {summary['seconds']:.1f} s (threshold {summary['threshold']:.6f})"
    )
    click.echo(f"flagged {summary['flagged']:,} accounts; {summary['campaigns']} campaigns; report: {out}")
    if summary.get("skipped"):
        click.echo(f"skipped {summary['skipped']:,} events that could not be scored (see the warnings above)")
    if reading.format != "cuirass":
        _say_reading(summary)
    for row in report["accounts"][:5]:
        if not row["flagged"]:
            break
        why = "; ".join(row["reasons"][:2])
        click.echo(f"  {row['account']}  score {row['score']:.4f}  {why}")


def _say_reading(summary: dict[str, Any]) -> None:
    """What a foreign log was and was not: its format, the fields it lacked, what was skipped."""
    lacking = ", ".join(summary["lacking"]) or "nothing"
    click.echo(f"format {summary['format']}: lacked {lacking} (left empty, not invented)")
    if summary["params_carried"] is not None:
        click.echo(f"  request parameters carried: only {', '.join(summary['params_carried'])}")
    if summary["malformed"] or summary["ignored"]:
        click.echo(
            f"  skipped {summary['malformed']:,} malformed records (see the warnings above); "
            f"ignored {summary['ignored']:,} that hold no model request"
        )


@detect.command("calibrate")
@click.option("--benign", "benign_path", required=True, type=_EXISTING, help="Benign-only event log (JSON lines).")
@click.option(
    "--fpr",
    default=0.001,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Largest share of benign accounts that may be flagged.",
)
@click.option("--out", "out", required=True, type=_OUT, help="calibration.json to write.")
@click.option(
    "--campaign-interval",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=1.0),
    help="Event-time seconds between campaign jobs (use the same value for `detect run`).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="cuirass",
    show_default=True,
    help="What the log is, as for `detect run` (calibrate on the same kind of log you will scan: a log that "
    "lacks fields scores differently).",
)
@_account_field
@_jobs
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate_cmd(
    benign_path: Path,
    fpr: float,
    out: Path,
    campaign_interval: float,
    fmt: str,
    account_field: str | None,
    jobs: int | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Set the score threshold so that at most FPR of the benign accounts would be flagged."""
    from cuirass.detect.calibrate import calibrate_digests
    from cuirass.detect.parallel import default_jobs
    from cuirass.detect.replay import in_time_order

    if account_field is not None and fmt == "cuirass":
        raise click.UsageError("--account-field is for --format otel, litellm or openai-jsonl")
    reading = Reading(fmt)
    options = Options(account_field=account_field)
    try:
        with _bar(benign_path, progress) as bar:
            ordered = in_time_order(
                _digests(benign_path, reading, options, default_jobs() if jobs is None else jobs, bar)
            )
        calibration = calibrate_digests(ordered, fpr=fpr, campaign_interval_s=campaign_interval)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    calibration["log"] = reading.summary()  # the kind of log this threshold holds for
    _write(out, calibration)
    if as_json:
        click.echo(orjson.dumps(calibration, option=orjson.OPT_INDENT_2).decode())
        return
    note = "" if calibration["guaranteed"] else " (too few accounts to guarantee this FPR; threshold above the maximum)"
    click.echo(
        f"threshold {calibration['threshold']:.6f} for fpr {fpr} on {calibration['n_accounts']:,} benign "
        f"accounts ({calibration['flagged_at_threshold']} flagged at it){note}; wrote {out}"
    )
    if fmt != "cuirass":
        _say_reading(calibration["log"])


@detect.command("watch")
@location_options
def watch(config_path: str | None, data_dir: str | None) -> None:
    """Run online detection: tail the event log, score accounts, write the verdict store.

    `cuirass serve` starts one beside the gateway. With a shared PostgreSQL store, run exactly one
    `cuirass detect watch` for all gateway replicas; a second one on the same database is refused.
    """
    import logging
    import signal
    import threading

    from cuirass.bus.notify import open_notifier
    from cuirass.bus.push import Publisher
    from cuirass.children import LOCKED
    from cuirass.cli.common import settings_or_exit
    from cuirass.events.deadletter import DeadLetters
    from cuirass.gateway import metrics
    from cuirass.services.detection import DetectionService
    from cuirass.storage.migrate import make_engine
    from cuirass.verdicts.lock import WatcherLock

    settings = settings_or_exit(config_path, data_dir=data_dir)
    try:
        engine = make_engine(settings.database_url)
        lock = WatcherLock(engine)
        if not lock.acquire():
            click.echo(
                f"Error: another detection service (`cuirass detect watch`) already runs on this database "
                f"({lock.where}); refusing to start a second one.",
                err=True,
            )
            sys.exit(LOCKED)
        dead = DeadLetters(
            settings.data_dir / "dead-letters",
            "detect",
            logging.getLogger("cuirass.detect.service"),
            on_count=metrics.DEAD_LETTERS.labels("detect").inc,
        )
        notifier = open_notifier(settings)  # verdicts pushed to every gateway as they are written
        service = DetectionService(engine, settings.detection, dead, Publisher(notifier))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot start detection: {exc}") from None
    stop = threading.Event()
    lost = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def keep_lock() -> None:  # PostgreSQL: a lost session loses the lock; stop if another watcher took it
        while not stop.wait(5.0):
            if not lock.held():
                lost.set()
                stop.set()

    threading.Thread(target=keep_lock, name="cuirass-watch-lock", daemon=True).start()
    try:
        service.run(stop)
    finally:
        lock.release()
        if notifier is not None:
            notifier.close()
    if lost.is_set():
        click.echo(f"Error: the detection service lost {lock.where} to another watcher; stopping.", err=True)
        sys.exit(LOCKED)


@detect.command("shard")
@location_options
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics (detection lag) on this port.")
@click.option(
    "--status-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between status lines.",
)
@click.option(
    "--checkpoint-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between checkpoints of a partition reading a backlog (longer: fewer writes, more events "
    "read again by a shard that takes it over).",
)
def shard(
    config_path: str | None,
    data_dir: str | None,
    metrics_port: int | None,
    status_every: float,
    checkpoint_every: float,
) -> None:
    """Run one detector shard of a fleet: read a share of the event bus's partitions, score accounts.

    Start as many as you like (on one machine or many) with the same events.bus and a PostgreSQL
    storage.url: they share the partitions, take over those of a shard that stops, and elect one leader
    for campaign linking (docs/fleet.md). Prints a JSON status line (partitions, events, lag) every
    --status-every seconds.
    """
    import logging
    import signal
    import threading

    from cuirass.cli.common import settings_or_exit
    from cuirass.events.deadletter import DeadLetters
    from cuirass.gateway import metrics
    from cuirass.services.shards import Shard
    from cuirass.storage.migrate import make_engine

    settings = settings_or_exit(config_path, data_dir=data_dir)
    if settings.events.bus is None:
        raise click.ClickException("detector shards read the event bus: set events.bus (e.g. nats://127.0.0.1:4222)")
    if not settings.database_url.startswith("postgresql"):
        raise click.ClickException(
            "detector shards share their checkpoints and leases through PostgreSQL: set storage.url to a "
            "postgresql+psycopg:// URL (on one machine with SQLite, run `cuirass detect watch` instead)"
        )
    try:
        engine = make_engine(settings.database_url)
        dead = DeadLetters(
            settings.data_dir / "dead-letters",
            "shard",
            logging.getLogger("cuirass.detect.shards"),
            on_count=metrics.DEAD_LETTERS.labels("detect").inc,
        )
        worker = Shard(settings, engine, dead, checkpoint_s=checkpoint_every)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot start the detector shard: {exc}") from None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.run(stop, status_s=status_every)


@detect.command("campaigns")
@location_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def campaigns_cmd(config_path: str | None, data_dir: str | None, as_json: bool) -> None:
    """List the campaigns the online detector has found (the admin API's /admin/campaigns)."""
    from cuirass.cli.common import emit, settings_or_exit
    from cuirass.storage.migrate import make_engine
    from cuirass.verdicts.store import VerdictStore

    settings = settings_or_exit(config_path, data_dir=data_dir)
    rows = VerdictStore(make_engine(settings.database_url)).campaigns()
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(
                f"{c['id']}  score={c['score']:.3f}  accounts={len(c['accounts'])}  {'; '.join(c['reasons'][:2])}"
                for c in rs
            )
            or "no campaigns"
        ),
    )


COMMANDS = [detect]
