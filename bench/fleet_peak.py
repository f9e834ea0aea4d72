"""The fleet at its peak: two gateways in front of the fixed nginx upstream, two detector shards, the archive.

    .venv/bin/python bench/fleet_peak.py [--seconds 60] [--connections 32] [--accounts 200] [--write BENCHMARKS.md]

Everything runs on this machine: nginx (fixed chat.completion), two `cuirass serve` on the bus
(events.bus = the machine's NATS, a stream of this run's own), limits on Redis, two `cuirass detect shard`
and `cuirass events archive`, all on a PostgreSQL database of this run's own. Two wrk processes (one per
gateway, as a load balancer would split it) drive the gateways closed-loop at `--connections` each, each
request with the next of `--accounts` keys. Reported: the gateways' throughput and latency, the shards'
detection lag (verdict written minus the time the stream stored the event) per 5-second status window while
the load runs and after, and how long after the load ended the shards had scored every event.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, CUIRASS, MODEL, Procs, chat_body, free_port, post, start_nginx, wait_http, wrk

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
NATS = "nats://127.0.0.1:4222"
REDIS = "redis://127.0.0.1:6379/0"
ADMIN = "sk-bench-admin-0123456789abcdef"


def make_keys(env: dict[str, str], n: int) -> list[str]:
    """n accounts with one key each, made through the account store the fleet shares."""
    code = (
        "import json,sys\n"
        "from cuirass.cli.common import settings_or_exit\n"
        "from cuirass.storage.stores import open_store\n"
        "s = open_store(settings_or_exit(None))\n"
        f"keys = [s.create_key(s.create_account(f'bench-{{i}}').id)[1] for i in range({n})]\n"
        "print(json.dumps(keys))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    keys: list[str] = json.loads(out.stdout)
    return keys


class StatusReader:
    """Collects the JSON status lines a shard prints, with the time each arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.poll()

    def poll(self) -> None:
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return
        rows = text.splitlines()
        for line in rows[self._seen :]:
            if line.startswith("{"):
                try:
                    self.lines.append((time.time(), json.loads(line)))
                except json.JSONDecodeError:
                    continue
        self._seen = len(rows)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.poll()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--connections", type=int, default=32, help="per gateway")
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    ap.add_argument("--write", type=Path, help="replace this section in the given markdown file")
    args = ap.parse_args()

    import sqlalchemy as sa

    run = uuid.uuid4().hex[:8]
    db = f"cuirass_fleet_bench_{run}"
    stream = f"BENCH_{run.upper()}"
    workdir = BENCH / "results" / f"fleet-{run}"
    workdir.mkdir(parents=True, exist_ok=True)
    admin = sa.create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{db}"')
    env = {
        **os.environ,
        "CUIRASS_DATA_DIR": str(workdir / "data"),
        "CUIRASS_STORAGE__URL": PG + db,
        "CUIRASS_LIMITS__BACKEND": REDIS,
        "CUIRASS_EVENTS__BUS": NATS,
        "CUIRASS_EVENTS__BUS_STREAM": stream,
        "CUIRASS_DETECTION__ENABLED": "false",
        "CUIRASS_DETECTION__PUSH_CHANNEL": f"bench-{run}",
        "CUIRASS_ADMIN_KEY": ADMIN,
    }
    result: dict[str, Any] = {
        "seconds": args.seconds,
        "connections_per_gateway": args.connections,
        "load_before": round(os.getloadavg()[0], 1),  # other work on the machine when the run began
    }
    try:
        with Procs(workdir) as procs:
            nginx = start_nginx(procs, None)
            cfg = workdir / "cuirass.yaml"  # nginx lists no models: name the one it answers for
            cfg.write_text(
                json.dumps({"models": [{"name": MODEL, "upstream": {"base_url": f"http://127.0.0.1:{nginx}/json/v1"}}]})
            )
            env["CUIRASS_CONFIG"] = str(cfg)
            keys = make_keys(env, args.accounts)
            gateways = []
            for i in range(2):
                port = free_port()
                p = procs.start(
                    f"gateway{i}",
                    [str(CUIRASS), "serve", "--port", str(port)],
                    env=env,
                )
                wait_http(f"http://127.0.0.1:{port}/health/readiness", 90, p)
                gateways.append(f"http://127.0.0.1:{port}")
            for g in gateways:  # a request that fails here would make the whole run measure errors
                status, answer = post(f"{g}/v1/chat/completions", chat_body(False, MODEL), keys[0])
                if status != 200:
                    raise SystemExit(f"{g} answered {status}: {answer[:300]!r}")
            for i in range(2):
                procs.start(f"shard{i}", [str(CUIRASS), "detect", "shard", "--status-every", "5"], env=env)
            procs.start(
                "archive", [str(CUIRASS), "events", "archive", "--no-sql", "--parquet", str(workdir / "arc")], env=env
            )
            readers = [StatusReader(workdir / f"shard{i}.log") for i in range(2)]
            time.sleep(8)  # the shards take their partitions
            body = chat_body(False, MODEL)
            began = time.time()
            with ThreadPoolExecutor(2) as pool:
                runs = list(
                    pool.map(
                        lambda g: wrk(
                            f"{g}/v1/chat/completions", body, None, args.connections, args.seconds, None, keys=keys
                        ),
                        gateways,
                    )
                )
            ended = time.time()
            total = sum(r["requests"] for r in runs)
            result["gateways"] = [
                {k: r[k] for k in ("requests", "rps", "p50_ms", "p99_ms", "error_count")} for r in runs
            ]
            result["rps"] = sum(r["rps"] for r in runs)
            # Drain: until the shards have scored every event the gateways answered (the stream holds them all).
            deadline = time.time() + args.drain_timeout
            scored = 0
            while time.time() < deadline:
                for rd in readers:
                    rd.poll()
                latest = [rd.lines[-1][1]["events"] for rd in readers if rd.lines]
                scored = sum(latest)
                if scored >= total:
                    break
                time.sleep(1)
            drained = time.time()
            for rd in readers:
                rd.stop()
            windows = []
            for rd in readers:
                for t, line in rd.lines:
                    if line.get("lag_n"):
                        windows.append({"t": round(t - began, 1), "during": t <= ended + 5, **line})
            during = [w for w in windows if w["during"]]
            result.update(
                events=total,
                scored=scored,
                drained_after_load_s=round(drained - ended, 1) if scored >= total else None,
                lag_p50_s_median_window=_median([w["lag_p50_s"] for w in during]),
                lag_p99_s_worst_window=max((w["lag_p99_s"] for w in during), default=None),
                lag_p99_s_worst_window_after=max((w["lag_p99_s"] for w in windows), default=None),
                detection_events_per_s=round(total / max(1e-9, drained - began), 1),
                windows=windows,
            )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.dispose()
        _drop_stream(stream)
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    section = render(result, args)
    print(section)
    if args.write:
        import report

        report.write_section(args.write, section)


def _median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def _drop_stream(name: str) -> None:
    code = (
        "import asyncio, nats\n"
        "async def main():\n"
        f"    nc = await nats.connect('{NATS}')\n"
        f"    await nc.jetstream().delete_stream('{name}')\n"
        "    await nc.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    g = r["gateways"]
    lines = [
        "## The fleet at its peak (issue 18)",
        "",
        f"`.venv/bin/python bench/fleet_peak.py --seconds {args.seconds:g} --connections {args.connections} "
        f"--accounts {args.accounts}` on {platform.node()} ({os.cpu_count()} cores, everything on the same "
        "2 cores: nginx, two wrk, two gateways, two shards, the archive, NATS, Redis, PostgreSQL; load average "
        f"{r['load_before']} from other work when it began).",
        "",
        "| gateway | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
        *(
            f"| {i} | {x['requests']:,} | {x['rps']:,.0f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['error_count']} |"
            for i, x in enumerate(g)
        ),
        "",
        f"Both gateways: {r['rps']:,.0f} req/s, {r['events']:,} events. Detection lag (verdict written minus the "
        f"stream's time of the event), per shard and 5-second window while the load ran: median window p50 "
        f"{_s(r['lag_p50_s_median_window'])}, worst window p99 {_s(r['lag_p99_s_worst_window'])} (worst window "
        f"at any time {_s(r['lag_p99_s_worst_window_after'])}). The shards had scored every event "
        + (
            f"{r['drained_after_load_s']} s after the load ended"
            if r["drained_after_load_s"] is not None
            else f"not within {args.drain_timeout:.0f} s ({r['scored']:,} of {r['events']:,})"
        )
        + f"; detection kept {r['detection_events_per_s']:,.0f} events/s from the start of the load to the last "
        "event scored.",
    ]
    return "\n".join(lines) + "\n"


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


if __name__ == "__main__":
    main()
