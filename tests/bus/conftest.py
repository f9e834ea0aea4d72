"""The event bus's test fixtures: a stream of its own on the machine's NATS, or a NATS server of its own
(for the fault tests, which stop and restart it), and a reader of what a stream holds."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from cuirass.bus.jetstream import subject_prefix
from cuirass.processes import free_port

SHARED_NATS = "nats://127.0.0.1:4222"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _reachable(url: str) -> bool:
    host, port = url.removeprefix("nats://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


class NatsServer:
    """A `nats-server -js` of this test's own: killed and started again on the same port and store."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable(self.url):
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    if not shutil.which(NATS_SERVER):
        pytest.skip("nats-server is not installed")
    server = NatsServer(tmp_path / "nats")
    yield server
    server.kill()


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream name of this test's own on the shared NATS, deleted afterwards."""
    if not _reachable(SHARED_NATS):
        pytest.skip("no NATS on 127.0.0.1:4222")
    name = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    yield name

    async def drop() -> None:
        nc = await nats.connect(SHARED_NATS)
        try:
            await nc.jetstream().delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
        await nc.close()

    asyncio.run(drop())


def stream_rows(url: str, stream: str, expect: int = 0, timeout: float = 20) -> list[dict[str, Any]]:
    """Every event the stream holds (waiting up to `timeout` for at least `expect` of them), in stream order."""

    async def read() -> list[dict[str, Any]]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=5)
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            try:
                held = (await js.stream_info(stream)).state.messages
            except nats.js.errors.NotFoundError:
                held = 0
            if held >= expect or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        rows: list[dict[str, Any]] = []
        if held:
            sub = await js.pull_subscribe(
                f"{subject_prefix(stream)}.>", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
            )
            while len(rows) < held:
                rows += [orjson.loads(m.data) for m in await sub.fetch(1000, timeout=5)]
            await sub.unsubscribe()
        await nc.close()
        return rows

    return asyncio.run(read())
