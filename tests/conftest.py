"""Shared fixtures: real processes on free loopback ports, driven through real clients."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cuirass.compiled import status as compiled_status
from cuirass.processes import free_port, wait_http  # also re-exported to the tests


def pytest_sessionstart(session: pytest.Session) -> None:
    """A compiled hot module older than its source would test stale code in its place (cuirass.compiled)."""
    stale = [name for name, state in compiled_status().items() if state == "stale"]
    if stale:
        pytest.exit(f"compiled modules older than their sources: {stale}; run `make compile`", returncode=4)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `heavy` first: `make test`'s workers take modules in this order, and one of minutes taken
    last would keep one worker busy long after the other has run out of work."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)  # stable: the rest keep their order


PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
ADMIN_KEY = "sk-cui-admin-test-0123456789abcdef"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def cuirass(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cuirass", *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


class MockUpstream:
    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cuirass",
                "mock-upstream",
                "--port",
                str(self.port),
                "--model",
                "mock-model",
                "--model",
                "other-model",
                "--tokens",
                "24",
                *extra,
            ]
        )
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        wait_http(self.base_url + "/models", self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Gateway:
    """A `cuirass serve` process with its own data directory, an account and a key."""

    def __init__(
        self,
        tmp: Path,
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        key_args: tuple[str, ...] = (),
        account: str = "tester",  # another name for a second gateway on the same shared database
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.data_dir = tmp / "data"
        self.config_path = tmp / "cuirass.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.env = {"CUIRASS_ADMIN_KEY": ADMIN_KEY, **(env or {})}
        # A file, not a pipe: nobody reads a pipe until stop(), and a full one would block the gateway's logging.
        self.stderr_path = tmp / "serve.stderr"
        acc = json.loads(self.cli("accounts", "create", account, "--id", account, "--org", "acme", "--json").stdout)
        self.account = acc["id"]
        self.key = json.loads(self.cli("keys", "create", account, *key_args, "--json").stdout)["key"]
        with self.stderr_path.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cuirass",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                env={**os.environ, **self.env},
                stderr=stderr,
            )
        try:  # a slow start on a busy machine is not a failure; one that never answers leaves no process behind
            wait_http(f"http://127.0.0.1:{self.port}/health/liveness", self.proc, timeout=90)
        except (TimeoutError, RuntimeError):
            self.proc.kill()
            self.proc.wait()
            raise

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cuirass(
            *args, "--config", str(self.config_path), "--data-dir", str(self.data_dir), env=self.env, check=check
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cuirass.db"

    def events(self, expect: int | None = None, timeout: float = 10) -> list[dict[str, Any]]:
        """Rows of the event table; with `expect`, wait until the writer has flushed that many."""
        deadline = time.monotonic() + timeout
        while True:
            with sqlite3.connect(self.db_path) as conn:
                conn.row_factory = sqlite3.Row
                rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY seq")]
            if expect is None or len(rows) >= expect or time.monotonic() > deadline:
                for r in rows:
                    for k in ("messages", "params", "response", "actions", "shadowed"):
                        r[k] = json.loads(r[k]) if r[k] is not None else None
                return rows
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr = self.stderr_path.read_text(errors="replace")
        return self.proc.returncode


def gateway_config(mock: MockUpstream, **extra: Any) -> dict[str, Any]:
    dead_port = free_port()  # nothing listens here
    cfg: dict[str, Any] = {
        "models": [
            {"name": "m", "upstream": {"base_url": mock.base_url, "model": "mock-model"}},
            {"name": "slow", "upstream": {"base_url": mock.base_url, "model": "mock-model", "read_timeout_s": 1.0}},
            {"name": "down", "upstream": {"base_url": f"http://127.0.0.1:{dead_port}/v1", "connect_timeout_s": 2}},
        ],
        "server": {"max_body_bytes": 64 * 1024},
        "auth": {"cache_ttl_s": 0.5},
        "events": {"flush_interval_s": 0.05},
    }
    for k, v in extra.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


@pytest.fixture(scope="session")
def mock() -> Iterator[MockUpstream]:
    m = MockUpstream()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def gateway(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gw"), gateway_config(mock))
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(mock: MockUpstream, tmp_path: Path) -> Iterator[Any]:
    """Build a gateway with a custom configuration for one test."""
    made: list[Gateway] = []

    def make(env: dict[str, str] | None = None, key_args: tuple[str, ...] = (), **cfg: Any) -> Gateway:
        gw = Gateway(tmp_path / f"gw{len(made)}", gateway_config(mock, **cfg), env=env, key_args=key_args)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the caller's own on the machine's server (its URL), dropped afterwards."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_BASE + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield PG_BASE + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
