"""A small real fleet for the shard tests and the benchmark: a PostgreSQL database, a NATS JetStream server,
lab traffic published as a gateway would, and `cuirass detect shard` processes.

Everything is real: its own nats-server on a free port (so the other users of the machine's NATS are not
touched), a database of its own (dropped afterwards), shard processes started with `python -m cuirass`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import yaml

from cuirass.bus.jetstream import JetStreamSink
from cuirass.detect import checkpoint
from cuirass.detect.engine import Detector
from cuirass.detect.replay import digests, run
from cuirass.events.record import Event
from cuirass.services.detection import verdict_row
from cuirass.storage.migrate import make_engine
from tests.conftest import scratch_postgres

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database() -> contextlib.AbstractContextManager[str]:
    return scratch_postgres("cuirass_shards")


@contextlib.contextmanager
def nats_server(folder: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(folder / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not up(port):
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start")
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def traffic(
    out: Path, benign: int = 150, days: float = 1.0, campaigns: tuple[str, ...] | None = ("hydra:30", "stealth:20")
) -> list[dict[str, Any]]:
    """Seeded lab traffic (benign people and campaigns; None: the generator's default campaigns), as event
    rows in event-time order."""
    args = ["--out", str(out), "--benign-accounts", str(benign), "--days", str(days), "--no-progress"]
    for campaign in campaigns or ():
        args += ["--campaign", campaign]
    subprocess.run(
        [sys.executable, "-m", "cuirass", "lab", "traffic", *args], check=True, capture_output=True, timeout=600
    )
    return [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]


def publish(url: str, stream: str, rows: list[dict[str, Any]], partitions: int = 16) -> None:
    """Publish rows in order exactly as a gateway's event writer does (`JetStreamSink`)."""
    sink = JetStreamSink(url, stream, partitions)
    try:
        for i in range(0, len(rows), 500):
            sink.append(rows[i : i + 500])
    finally:
        sink.close()


def reference(rows: list[dict[str, Any]], interval_s: float) -> Detector:
    """The single-process replay of the same events (detect/replay.py)."""
    detector = Detector(None, campaign_interval_s=interval_s)
    return run(detector, digests(Event.from_dict(r) for r in rows))


class Fleet:
    """Config, shard processes and the database view of one sharded run."""

    def __init__(self, folder: Path, db: str, bus: str, stream: str, interval_s: float, partitions: int = 16) -> None:
        self.folder = folder
        self.db = db
        self.engine = make_engine(db)  # brought to the newest schema before any shard starts
        self.stream = stream
        self.partitions = partitions
        self.config = folder / "fleet.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(folder / "data"),
                    "storage": {"url": db},
                    "events": {"bus": bus, "bus_stream": stream, "bus_partitions": partitions},
                    "detection": {"campaign_interval_s": interval_s},
                }
            )
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.folder / f"{name}.out", "ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cuirass",
                    "detect",
                    "shard",
                    "--config",
                    str(self.config),
                    "--status-every",
                    "0.5",
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.dispose()

    def partitions_table(self) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(
                    conn.execute(sa.text("SELECT * FROM detect_partitions WHERE stream = :s"), {"s": self.stream})
                )
        except sa.exc.ProgrammingError:
            return []  # not migrated yet

    def wait_done(self, total_seq: int, timeout: float) -> None:
        """Until every partition has read the whole stream (its last sequence) and applied the last job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.partitions_table()
            if len(rows) == self.partitions and all(r.caught_up for r in rows):
                with self.engine.connect() as conn:
                    job = conn.execute(
                        sa.text("SELECT max(id) FROM detect_jobs WHERE stream = :s AND phase = 'done'"),
                        {"s": self.stream},
                    ).scalar()
                if max(r.seq for r in rows) == total_seq and all(r.job == job for r in rows):
                    return
            time.sleep(0.2)
        raise AssertionError(f"the shards did not finish within {timeout}s: {self.partitions_table()}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.folder.glob("*.out")))

    def verdicts(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.account: dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM verdicts"))}

    def requests(self) -> dict[str, int]:
        """Per-account request counts in the checkpointed detector state (the blobs the shards wrote)."""
        out = {}
        probe = Detector(None)
        with self.engine.connect() as conn:
            for r in conn.execute(sa.text("SELECT state FROM detect_accounts WHERE stream = :s"), {"s": self.stream}):
                account, _ = checkpoint.load_account(probe, bytes(r.state))
                out[account] = probe.scorer.accounts[account].n
        return out


def expected_verdicts(detector: Detector) -> dict[str, dict[str, Any]]:
    return {a: verdict_row(detector, a) for a in detector.scorer.accounts}
