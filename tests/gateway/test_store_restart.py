"""PostgreSQL restarted under a running gateway: no request gets a 500, no event is lost.

The test runs a PostgreSQL cluster of its own (initdb as the `postgres` user on a free port), so that it can
stop the server outright (`pg_ctl stop -m immediate`, as a crash would) without touching the machine's one.
While it is down, a key the gateway has cached is still served (its event waits in the spool and the
writer's queue); a key it must look up gets a 503 with retry-after, never a 500 and never a hung request.
Once the server is back, the writer stores every event it held.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa

from cuirass.processes import free_port
from tests.conftest import Gateway, MockUpstream, gateway_config

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class OwnPostgres:
    """A throw-away cluster: trust authentication, listening on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cuirass-pg-", dir="/tmp"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres(PG_BIN / "initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")
        self.start()

    def _as_postgres(self, *args: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, args)], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-o", opts, "-l", self.dir / "log", "-w", "start")

    def crash(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "immediate", "stop")

    def remove(self) -> None:
        try:
            self.crash()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("needs root, runuser and PostgreSQL 15's binaries to run a cluster of its own")
    pg = OwnPostgres()
    yield pg
    pg.remove()


def test_postgres_crash_and_restart_under_a_gateway(
    mock: MockUpstream, own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    gw = Gateway(tmp_path / "gw", gateway_config(mock, storage={"url": own_postgres.url}, auth={"cache_ttl_s": 60}))
    try:
        other_key = gateway_key(gw)  # made now, never used before the crash: not in the gateway's cache
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
        ask = lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])  # noqa: E731
        ask(client)  # the key is cached from here on

        own_postgres.crash()
        for _ in range(5):  # a cached key is served while the store is down
            assert ask(client).choices[0].message.content
        started = time.monotonic()
        r = httpx.post(
            f"{gw.base_url}/chat/completions",
            headers={"authorization": f"Bearer {other_key}"},
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "service_unavailable" and r.headers["retry-after"] == "1"
        assert time.monotonic() - started < 10

        own_postgres.start()
        other = openai.OpenAI(base_url=gw.base_url, api_key=other_key, max_retries=0)
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects (pre-ping) on the next lookup
            try:
                ask(other)
                break
            except openai.APIStatusError as exc:
                assert exc.status_code == 503, exc
                assert time.monotonic() < deadline, "the gateway did not use the restarted store"
                time.sleep(0.5)

        engine = sa.create_engine(own_postgres.url)
        try:
            deadline = time.monotonic() + 30
            while True:  # every request left one event, the ones answered during the outage included
                with engine.connect() as conn:
                    by_status = dict(conn.execute(sa.text("SELECT status, count(*) FROM events GROUP BY status")).all())
                if by_status.get(200, 0) >= 7 and by_status.get(503, 0) >= 1:
                    break
                assert time.monotonic() < deadline, f"events not stored after the restart: {by_status}"
                time.sleep(0.5)
            assert 500 not in by_status
        finally:
            engine.dispose()
    finally:
        gw.stop()
    assert "Traceback" not in gw.stderr, gw.stderr[-4000:]


def gateway_key(gw: Gateway) -> str:
    import json

    return str(json.loads(gw.cli("keys", "create", gw.account, "--json").stdout)["key"])
