"""Online detection throughput and lag of `cuirass detect shard`, with 1 and 2 shards, on this machine.

1. Throughput: lab traffic (benign people and the default campaigns) is published once to a JetStream stream,
   as gateways would; then, for 1 and for 2 shards, each on a fresh database (so each reads the whole stream
   from its first sequence), the wall time from starting the shards to every partition having read the
   stream and applied the last campaign job. events/s = events / that time (shard start-up included).
2. Lag: 2 shards on a fresh stream while events are published at a fixed rate (their `ts` set to the
   publish time, as a gateway stamps them); lag p50/p99 is read from the shards' own Prometheus histogram
   `cuirass_detect_lag_seconds` (time from the stream storing an event to its verdict being written),
   interpolated within buckets as Prometheus' histogram_quantile does.

Needs PostgreSQL on 127.0.0.1:5432 and nats-server; starts its own nats-server on a free port.

    PYTHONPATH=src .venv/bin/python bench/shard_throughput.py --benign 1500 --days 2 --rate 400 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.detect_live import shard_fleet as F

from cuirass.bus.jetstream import JetStreamSink


def throughput(folder: Path, bus: str, stream: str, n: int, total: int, interval_s: float) -> tuple[float, int]:
    with F.database() as db:
        run = folder / f"tp{n}"
        run.mkdir()
        fleet = F.Fleet(run, db, bus, stream, interval_s)
        try:
            started = time.perf_counter()
            for i in range(n):
                fleet.start(f"s{i}")
            fleet.wait_done(total, timeout=3600)
            wall = time.perf_counter() - started
            with fleet.engine.connect() as conn:
                jobs = conn.exec_driver_sql(f"SELECT count(*) FROM detect_jobs WHERE stream = '{stream}'").scalar()
        finally:
            fleet.stop_all()
    return wall, int(jobs or 0)


def _histogram(port: int) -> dict[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("cuirass_detect_lag_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds rank q * count."""
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    rank, lower, below = q * total, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (rank - below) / max(buckets[edge] - below, 1e-9)
        lower, below = edge, buckets[edge]
    return lower


def lag(folder: Path, rows: list[dict[str, Any]], rate: float, seconds: float, interval_s: float) -> dict[str, Any]:
    run = folder / "lag"
    run.mkdir()
    with F.database() as db, F.nats_server(run) as bus:
        stream = "LAG"
        fleet = F.Fleet(run, db, bus, stream, interval_s)
        ports = [F.free_port(), F.free_port()]
        sink = JetStreamSink(bus, stream, 16)
        try:
            for i, port in enumerate(ports):
                fleet.start(f"s{i}", "--metrics-port", str(port))
            time.sleep(8)  # start-up: both shards up and sharing the partitions
            sent, started, i = 0, time.monotonic(), 0
            while time.monotonic() - started < seconds:
                due = int((time.monotonic() - started) * rate) - sent
                if due > 0:
                    batch = []
                    for _ in range(due):
                        row = rows[i % len(rows)]
                        batch.append({**row, "ts": time.time(), "request_id": f"{row['request_id']}-{i}"})
                        i += 1
                    sink.append(batch)
                    sent += len(batch)
                time.sleep(0.02)
            time.sleep(5)  # let the shards drain what is in flight
            merged: dict[float, float] = {}
            for port in ports:
                for edge, count in _histogram(port).items():
                    merged[edge] = merged.get(edge, 0.0) + count
        finally:
            sink.close()
            fleet.stop_all()
    return {
        "sent": sent,
        "rate": sent / seconds,
        "observed": int(merged.get(float("inf"), 0)),
        "p50": quantile(0.5, merged),
        "p99": quantile(0.99, merged),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benign", type=int, default=1500, help="benign accounts of the lab traffic")
    ap.add_argument("--days", type=float, default=2.0, help="days of lab traffic")
    ap.add_argument("--traffic", type=Path, default=None, help="reuse this lab traffic file instead")
    ap.add_argument("--interval", type=float, default=3600.0, help="campaign_interval_s (event time)")
    ap.add_argument("--rate", type=float, default=400.0, help="events/s published during the lag run")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the lag run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="shard-bench-") as tmp:
        folder = Path(tmp)
        if args.traffic is not None:
            import orjson

            rows = [orjson.loads(x) for x in args.traffic.read_bytes().splitlines() if x.strip()]
        else:
            rows = F.traffic(folder / "traffic.jsonl", benign=args.benign, days=args.days, campaigns=None)
        results = {}
        with F.nats_server(folder) as bus:
            stream = f"BENCH_{uuid.uuid4().hex[:6].upper()}"
            t = time.perf_counter()
            F.publish(bus, stream, rows)
            publish_s = time.perf_counter() - t
            for n in (1, 2):
                results[n] = throughput(folder, bus, stream, n, len(rows), args.interval)
        lagged = lag(folder, rows, args.rate, args.seconds, 300.0)
    accounts = len({r["account"] for r in rows})
    print("## Sharded online detection (`cuirass detect shard`)\n")
    print(f"`PYTHONPATH=src .venv/bin/python bench/shard_throughput.py {' '.join(sys.argv[1:])}`".rstrip() + "\n")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs "
        f"while this ran), Python {platform.python_version()}; PostgreSQL and nats-server on the same machine.\n"
    )
    print(
        f"Throughput: {len(rows):,} lab-traffic events ({accounts:,} accounts) pre-published to one stream "
        f"(16 partitions; publishing took {publish_s:.1f} s); each run on a fresh database reads the stream from "
        f"its start; campaign_interval_s = {args.interval:.0f} (event time); wall time includes shard start-up.\n"
    )
    print("| shards | wall (s) | events/s | campaign jobs |")
    print("|---|---|---|---|")
    for n, (wall, jobs) in results.items():
        print(f"| {n} | {wall:.1f} | {len(rows) / wall:,.0f} | {jobs} |")
    print(
        f"\nLag: 2 shards, events published at a fixed {lagged['rate']:.0f} events/s for {args.seconds:.0f} s "
        f"(ts = publish time, campaign_interval_s = 300): {lagged['observed']:,} events scored; lag (stream "
        f"stored -> verdict written, from `cuirass_detect_lag_seconds`) p50 {lagged['p50']:.3f} s, "
        f"p99 {lagged['p99']:.3f} s.\n"
    )


if __name__ == "__main__":
    main()
