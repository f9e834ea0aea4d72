"""`cuirass fleet`: a whole fleet on one machine, for demos, tests and benchmarks.

Two gateways on two ports, two detector shards and the archive writer, on the machine's PostgreSQL
(the record: accounts, verdicts, checkpoints), Redis (shared limits) and NATS JetStream (the event bus,
verdict push). Each process is what a real deployment runs on its own machine; here they share one data
directory, which on several machines means copying its secret files to each (docs/fleet.md).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
import orjson

from cuirass.children import Supervised
from cuirass.cli.common import settings_or_exit
from cuirass.config import ModelConfig, UpstreamConfig
from cuirass.processes import wait_http

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/cuirass_fleet"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database the URL names if it does not exist (the schema is migrated by the
    processes as they start)."""
    import sqlalchemy as sa

    target = sa.make_url(url)
    if not target.drivername.startswith("postgresql") or not target.database:
        return
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database})
            if exists.first() is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    except sa.exc.SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot reach PostgreSQL at {_without_password(url)}: {type(exc).__name__}"
        ) from None
    finally:
        admin.dispose()


@click.command()
@click.option("--gateways", default=2, show_default=True, type=click.IntRange(1, 16), help="Gateway processes.")
@click.option("--shards", default=2, show_default=True, type=click.IntRange(1, 64), help="Detector shards.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="First gateway's port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the gateways listen on.")
@click.option("--upstream", help="OpenAI-compatible server to protect (default: the built-in model).")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True, help="PostgreSQL URL (the record).")
@click.option("--redis", "redis_url", default="redis://127.0.0.1:6379/0", show_default=True, help="Shared limits.")
@click.option("--nats", "nats_url", default="nats://127.0.0.1:4222", show_default=True, help="Event bus and push.")
@click.option(
    "--parquet",
    type=click.Path(file_okay=False),
    help="Where the archive writer keeps the events as Parquet files by day (default: DATA_DIR/archive).",
)
@click.option(
    "--data-dir",
    default=".cuirass-fleet",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The fleet's data directory (secrets, spools).",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML configuration for every process.")
@click.option("--json", "as_json", is_flag=True, help="Print the start-up information as one JSON object.")
def fleet(
    gateways: int,
    shards: int,
    port: int,
    host: str,
    upstream: str | None,
    database: str,
    redis_url: str,
    nats_url: str,
    parquet: str | None,
    data_dir: str,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Run a local fleet: gateways, detector shards and the archive writer on PostgreSQL, Redis and NATS.

    Every process is restarted if it exits; Ctrl-C (or SIGTERM) stops them all.
    """
    from cuirass.cli.serve import builtin_models, ensure_first_account, start_builtin_model

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ensure_database(database)
    env = {
        "CUIRASS_DATA_DIR": str(Path(data_dir).resolve()),
        "CUIRASS_STORAGE__URL": database,
        "CUIRASS_LIMITS__BACKEND": redis_url,
        "CUIRASS_EVENTS__BUS": nats_url,
        "CUIRASS_DETECTION__ENABLED": "false",  # the shards detect; no gateway runs its own watcher
    }
    if config_path:
        env["CUIRASS_CONFIG"] = str(Path(config_path).resolve())
    if upstream:
        env["CUIRASS_UPSTREAM"] = upstream
    os.environ.update(env)  # so the settings below, and every child, see the fleet's configuration
    settings = settings_or_exit(config_path)
    children: list[Supervised] = []
    mock = None
    try:
        builtin = not settings.models and not settings.upstream
        if builtin:
            models = builtin_models()
            if models is None:
                mock, url = start_builtin_model()
                models = [ModelConfig(name="cuirass-reference", upstream=UpstreamConfig(base_url=url))]
            os.environ["CUIRASS_MODELS"] = orjson.dumps([m.model_dump(mode="json") for m in models]).decode()
        generated = None
        if settings.admin_key is None:  # one key for every gateway of the fleet, printed once
            generated = "sk-cui-admin-" + secrets.token_urlsafe(32)
            os.environ["CUIRASS_ADMIN_KEY"] = generated
        first = ensure_first_account(settings) if builtin else None
        me = [sys.executable, "-m", "cuirass"]
        urls = []
        for i in range(gateways):
            p = port + i
            urls.append(f"http://{host}:{p}/v1")
            children.append(Supervised(f"gateway {i}", [*me, "serve", "--host", host, "--port", str(p)]))
        for i in range(shards):
            args = [*me, "detect", "shard", "--index", str(i), "--shards", str(shards)]
            children.append(Supervised(f"detector shard {i}", args))
        archive = str(Path(parquet or Path(data_dir) / "archive").resolve())
        children.append(Supervised("archive writer", [*me, "events", "archive", "--parquet", archive]))
        for child in children:
            child.start()
        for i, url in enumerate(urls):
            proc = children[i].proc
            assert proc is not None
            try:
                wait_http(url.removesuffix("/v1") + "/health/liveness", proc, 120)
            except (RuntimeError, TimeoutError):
                raise click.ClickException(f"gateway {i} did not start on {url}") from None
        info: dict[str, Any] = {
            "gateways": urls,
            "shards": shards,
            "archive": archive,
            "database": _without_password(database),
            "limits": redis_url,
            "bus": nats_url,
            "admin_key": generated,
        }
        if first:
            info.update(first)
        _announce(info, as_json)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            child.stop()
        if mock is not None:
            mock.terminate()
            mock.wait(10)


def _without_password(url: str) -> str:
    """The URL with any password hidden."""
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def _announce(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(info).decode() + "\n")
        sys.stdout.flush()
        return
    lines = [
        f"Cuirass fleet: {len(info['gateways'])} gateways, {info['shards']} detector shards, the archive writer",
        *(f"  gateway   {u}" for u in info["gateways"]),
        f"  record    {info['database']}",
        f"  limits    {info['limits']}",
        f"  bus       {info['bus']}",
        f"  archive   {info['archive']}",
    ]
    if info.get("admin_key"):
        lines.append(f"Admin key (shown once; or set CUIRASS_ADMIN_KEY): {info['admin_key']}")
    if info.get("api_key"):
        lines.append(f"First account '{info['account']}', API key (shown once): {info['api_key']}")
    lines.append("Put a load balancer in front of the gateways; Ctrl-C stops the fleet.")
    click.echo("\n".join(lines), err=True)


COMMANDS = [fleet]
