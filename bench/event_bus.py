"""The event bus (issue 18): what the JetStream sink publishes, what the archive stores, what a gateway pays.

    .venv/bin/python bench/event_bus.py [--events 50000] [--requests 2000] [--nats nats://127.0.0.1:4222]

In one run, against the NATS JetStream server at --nats (a stream of this run's own, deleted at the end):

1. Sink: `JetStreamSink.append` in batches of 512 (the event writer's default batch), each returning once
   the stream acknowledged every event: events/s.
2. Archive: the archive writer (`bus.archive.Archiver`, batches of 1000) over those events, into a SQLite
   event log, and into Parquet files (also with batches of 10,000): events/s each (a fresh durable
   consumer per run).
3. Gateway latency: `cuirass serve` (1 worker, detection off) in front of `cuirass mock-upstream`, a
   sequential client (concurrency 1), non-streaming chat completions, without a bus and with
   `events.bus`: p50 and p99 of the request time, and the difference.

Prints a markdown section for BENCHMARKS.md ("## Event bus (issue 18)") with the command and machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cuirass.bus.archive import Archiver, ParquetTarget
from cuirass.bus.jetstream import Connection, JetStreamSink
from cuirass.events.deadletter import DeadLetters
from cuirass.events.store import SqlEventLog
from cuirass.events.writer import EventWriter
from cuirass.storage.migrate import make_engine
from harness import Procs, free_port, wait_http

ADMIN = "sk-bench-admin-0123456789abcdef"


def _rows(n: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "ts": now + i * 0.001,
            "request_id": uuid.uuid4().hex,
            "account": f"acct-{i % 500}",
            "endpoint": "/v1/chat/completions",
            "model": "m",
            "messages": [{"role": "user", "content": f"Tom has {i} apples and buys 4 more. How many?"}],
            "params": {"max_tokens": 16, "temperature": 0.7},
            "response": {"content": f"He has {i + 4} apples.", "finish_reason": "stop", "usage": {"total_tokens": 40}},
            "action": "pass",
            "status": 200,
            "latency_ms": 12.5,
            "upstream": "principal",
            "actions": [],
        }
        for i in range(n)
    ]


def bench_sink(url: str, stream: str, n: int) -> float:
    rows = _rows(n)
    sink = JetStreamSink(url, stream, 16)
    sink.append(rows[:10])  # connect and create the stream outside the timing
    t = time.perf_counter()
    for k in range(10, n, 512):
        sink.append(rows[k : k + 512])
    took = time.perf_counter() - t
    sink.close()
    return (n - 10) / took


def bench_archive(url: str, stream: str, n: int, work: Path, target: str, batch: int = 1000) -> float:
    conn = Connection(url, stream, name="bench-archive")
    letters = DeadLetters(None, "archive", logging.getLogger("bench"))
    sql = EventWriter(SqlEventLog(make_engine(f"sqlite:///{work / f'{target}.db'}")), dead_letters=letters)
    archiver = Archiver(
        conn,
        sql=sql if target == "sql" else None,
        parquet_target=ParquetTarget(work / f"parquet-{batch}") if target == "parquet" else None,
        dead_letters=letters,
        durable=f"bench-{target}-{batch}",
        batch=batch,
    )
    t = time.perf_counter()
    stats = archiver.run(threading.Event(), until_idle_s=1.0)
    took = time.perf_counter() - t - 1.0  # less the idle second that ends the run
    archiver.close()
    assert stats.messages == n, stats
    return n / took


def _gateway(procs: Procs, name: str, upstream: str, bus: dict[str, str] | None) -> tuple[str, str]:
    d = procs.workdir / name
    d.mkdir()
    cfg = {
        "models": [{"name": "m", "upstream": {"base_url": upstream, "model": "mock-model"}}],
        "detection": {"enabled": False},
        "events": bus or {},
    }
    (d / "cuirass.yaml").write_text(json.dumps(cfg))
    common = ["--config", str(d / "cuirass.yaml"), "--data-dir", str(d)]
    env = {**os.environ, "CUIRASS_ADMIN_KEY": ADMIN}
    out = subprocess.run(
        [sys.executable, "-m", "cuirass", "accounts", "create", "bench", "--with-key", "--json", *common],
        check=True,
        capture_output=True,
        env=env,
    )
    key = json.loads(out.stdout)["key"]
    port = free_port()
    p = procs.start(name, [sys.executable, "-m", "cuirass", "serve", *common, "--port", str(port)], env=env)
    wait_http(f"http://127.0.0.1:{port}/health/readiness", 60, p)
    return f"http://127.0.0.1:{port}/v1", key


def _latencies(base: str, key: str, n: int) -> list[float]:
    body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
    out = []
    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=10) as c:
        for i in range(n + 50):
            t = time.perf_counter()
            r = c.post(base + "/chat/completions", json=body)
            took = time.perf_counter() - t
            assert r.status_code == 200, r.text
            if i >= 50:  # warm-up
                out.append(took * 1000)
    return out


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) > 1 else xs[0]


def bench_gateway(url: str, stream: str, n: int, work: Path) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    with Procs(work) as procs:
        port = free_port()
        mock = procs.start(
            "mock",
            [sys.executable, "-m", "cuirass", "mock-upstream", "--port", str(port), "--model", "mock-model"],
        )
        upstream = f"http://127.0.0.1:{port}/v1"
        wait_http(upstream + "/models", 30, mock)
        targets = {"no bus (SQLite event log)": None, "events.bus (JetStream)": {"bus": url, "bus_stream": stream}}
        gws = {name: _gateway(procs, f"gw{i}", upstream, bus) for i, (name, bus) in enumerate(targets.items())}
        runs: dict[str, list[float]] = {name: [] for name in gws}
        for _ in range(2):  # alternating rounds: drift on a shared machine hits both alike
            for name, (base, key) in gws.items():
                runs[name] += _latencies(base, key, n // 2)
        for name, xs in runs.items():
            out[name] = (statistics.median(xs), _pct(xs, 99))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            sink = bench_sink(args.nats, stream, args.events)
            sql = bench_archive(args.nats, stream, args.events, work, "sql")
            pq = bench_archive(args.nats, stream, args.events, work, "parquet")
            pq_big = bench_archive(args.nats, stream, args.events, work, "parquet", batch=10_000)
            lat = bench_gateway(args.nats, f"{stream}_GW", args.requests, work)
        finally:
            _drop(args.nats, [stream, f"{stream}_GW"])
    cores = os.cpu_count()
    cmd = f"PYTHONPATH=src .venv/bin/python bench/event_bus.py --events {args.events} --requests {args.requests}"
    lines = [
        "## Event bus (issue 18)",
        "",
        f"Command: `{cmd}`, {platform.machine()} with {cores} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
        " NATS JetStream on the same machine (file storage).",
        "",
        "| stage | events/s |",
        "|---|---|",
        f"| JetStreamSink.append, batches of 512, each acknowledged | {sink:,.0f} |",
        f"| archive writer -> SQLite event log (batches of 1000) | {sql:,.0f} |",
        f"| archive writer -> Parquet by day (batches of 1000) | {pq:,.0f} |",
        f"| archive writer -> Parquet by day (batches of 10,000) | {pq_big:,.0f} |",
        "",
        f"Gateway (1 worker) in front of the mock upstream, sequential client, {args.requests} requests each"
        " (alternating rounds):",
        "",
        "| gateway | p50 ms | p99 ms |",
        "|---|---|---|",
        *(f"| {name} | {p50:.2f} | {p99:.2f} |" for name, (p50, p99) in lat.items()),
    ]
    print("\n".join(lines))


def _drop(url: str, streams: list[str]) -> None:
    async def drop() -> None:
        js = await conn.js()
        for s in streams:
            try:
                await js.delete_stream(s)
            except Exception:  # noqa: BLE001 - not created
                pass

    conn = Connection(url, streams[0], name="bench-cleanup")
    try:
        conn.call(drop, 10)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
