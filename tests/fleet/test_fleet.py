"""`cuirass fleet`: the whole fleet from one command, used as a user would (the openai client on both gateways).

One key's limit holds across the two gateways (Redis), every request's event reaches the archive in SQL and in
Parquet through the bus (NATS JetStream), the detector shards write the account's verdict, and stopping the
fleet stops every process it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from cuirass.events import parquet
from cuirass.processes import free_port
from tests.bus.conftest import NatsServer
from tests.conftest import MockUpstream, cuirass

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
RPM = 6


def _two_free_ports() -> int:
    """A port p with p and p + 1 both free (the fleet's two gateways)."""
    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture
def database() -> Iterator[str]:
    name = f"cuirass_fleet_test_{uuid.uuid4().hex[:10]}"
    yield PG + name  # `cuirass fleet` creates it
    admin = sa.create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_fleet_shares_limits_archives_events_and_detects(mock: MockUpstream, database: str, tmp_path: Path) -> None:
    nats_server = NatsServer(tmp_path / "nats")
    port = _two_free_ports()
    data = tmp_path / "fleet"
    env = {
        **os.environ,
        "CUIRASS_LIMITS__REQUESTS_PER_MIN": str(RPM),
        "CUIRASS_DETECTION__PUSH_CHANNEL": f"fleet-test-{uuid.uuid4().hex[:8]}",
    }
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "cuirass", "fleet", "--json"),
            *("--port", str(port), "--upstream", mock.base_url, "--database", database),
            *("--nats", nats_server.url, "--redis", "redis://127.0.0.1:6379/0", "--data-dir", str(data)),
        ],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert len(info["gateways"]) == 2 and info["shards"] == 2
        assert info["admin_key"].startswith("sk-cui-admin-")

        store_env = {
            "CUIRASS_STORAGE__URL": database,
            "CUIRASS_DATA_DIR": str(data),
            "CUIRASS_LIMITS__REQUESTS_PER_MIN": str(RPM),
        }
        made = json.loads(cuirass("accounts", "create", "fleet-user", "--with-key", "--json", env=store_env).stdout)
        account, key = made["id"], made["key"]

        clients = [openai.OpenAI(base_url=url, api_key=key, max_retries=0) for url in info["gateways"]]
        admitted = [0, 0]
        refused = 0
        for i in range(2 * RPM):
            try:
                clients[i % 2].chat.completions.create(
                    model="mock-model", messages=[{"role": "user", "content": f"question {i}"}]
                )
                admitted[i % 2] += 1
            except openai.RateLimitError:
                refused += 1
        # One key, two gateways, one limit: the bucket holds RPM requests (plus what refills in a few seconds).
        assert RPM <= sum(admitted) <= RPM + 1, admitted
        assert min(admitted) >= 1 and refused >= RPM - 1

        engine = sa.create_engine(database)
        try:

            def archived() -> bool:
                with engine.connect() as conn:
                    return conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 2 * RPM

            _wait("the archive to store every event in SQL", archived, 60)
            rows = _wait(
                "the archive's Parquet files",
                lambda: (r := list(parquet.read(Path(info["archive"])))) and len(r) == 2 * RPM and r,
                60,
            )
            assert {r["account"] for r in rows} == {account}

            def scored() -> bool:
                with engine.connect() as conn:
                    found = conn.execute(sa.text("SELECT count(*) FROM verdicts WHERE account = :a"), {"a": account})
                    return found.scalar_one() == 1

            _wait("a detector shard to write the account's verdict", scored, 60)
        finally:
            engine.dispose()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        nats_server.kill()
    for p in (port, port + 1):  # nothing the fleet started still serves
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0
