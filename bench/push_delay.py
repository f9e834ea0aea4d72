"""Verdicts and revocations pushed (issue 18): how long a change made through one gateway takes to apply on another.

    .venv/bin/python bench/push_delay.py             # prints the "Verdicts and revocations, pushed" section
    .venv/bin/python bench/push_delay.py --n 20      # fewer changes per kind

Two gateways (`cuirass serve`, one worker each, detection off) share one PostgreSQL database in front of the
fixed nginx upstream, with the default `detection.refresh_s` (1 s) and `auth.cache_ttl_s` (2 s), and the
policy blocking flagged accounts. For each backend (Redis pub/sub, NATS core, and none: polling alone), the
benchmark makes `--n` changes of each kind through gateway 1's admin API (flag an account, clear it, revoke a
key that gateway 2 has cached) and probes gateway 2 with requests from the moment the admin API answered
(the change is committed) until its answer changes (403, 200, 401), after a pause of random length so that
changes do not fall in step with the poll. The delay includes one probe's round trip, a few milliseconds. Needs PostgreSQL, Redis and NATS on their standard local ports, and nginx.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from harness import MODEL, Procs, chat_body, free_port, post, start_nginx, wait_http

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
ADMIN = "sk-bench-admin-0123456789abcdef"
BACKENDS = {"redis": "redis://127.0.0.1:6379/0", "nats": "nats://127.0.0.1:4222", "poll": "off"}


def cli(data_dir: Path, cfg: Path, env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "cuirass", *args, "--config", str(cfg), "--data-dir", str(data_dir), "--json"],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout)


def admin(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    req = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def until(base: str, key: str, want: int, limit_s: float = 30.0) -> float:
    """Seconds from now until `base` answers `key` with `want`."""
    t0 = time.perf_counter()
    body = chat_body(False)
    while True:
        status, _ = post(base + "/v1/chat/completions", body, key)
        took = time.perf_counter() - t0
        if status == want:
            return took
        if took > limit_s:
            raise RuntimeError(f"{base} still answers {status}, not {want}, after {took:.1f}s")


def run_backend(procs: Procs, upstream: str, name: str, push: str, n: int) -> dict[str, list[float]]:
    db = f"cuirass_bench_push_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {db}")
    try:
        cfg_data = {
            "models": [{"name": MODEL, "upstream": {"base_url": upstream, "model": MODEL}}],
            "storage": {"url": PG + db},
            "detection": {"enabled": False, "push": push, "push_channel": f"cuirass.bench.{uuid.uuid4().hex[:8]}"},
            "policy": {"bands": [{"name": "flagged", "when": {"flagged": True}, "actions": ["block"]}]},
        }
        env = {"CUIRASS_ADMIN_KEY": ADMIN, "CUIRASS_KEY_SECRET": secrets.token_hex(32)}
        bases = []
        for i in (1, 2):
            d = procs.workdir / f"{name}-gw{i}"
            d.mkdir()
            cfg = d / "cuirass.yaml"
            cfg.write_text(json.dumps(cfg_data))  # JSON is YAML
            if i == 1:
                key = cli(d, cfg, env, "accounts", "create", "bench", "--id", "bench", "--with-key")["key"]
            port = free_port()
            argv = [sys.executable, "-m", "cuirass", "serve", "--config", str(cfg), "--data-dir", str(d)]
            p = procs.start(f"{name}-gw{i}", [*argv, "--port", str(port)], env=env)
            wait_http(f"http://127.0.0.1:{port}/health/readiness", 60, p)
            bases.append(f"http://127.0.0.1:{port}")
        gw1, gw2 = bases
        if push != "off":
            deadline = time.monotonic() + 10
            while not json.loads(urllib.request.urlopen(gw2 + "/health/readiness").read())["push"]["connected"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("gateway 2 never subscribed")
                time.sleep(0.05)
        until(gw2, key, 200)
        out: dict[str, list[float]] = {"flag": [], "clear": [], "revoke": []}
        for _ in range(n):
            # A pause of random length first: back-to-back changes would fall at the same phase of the poll.
            time.sleep(random.uniform(0, 1.0))
            admin(gw1, "PUT", "/admin/accounts/bench/verdict", {"verdict": "flag", "reason": "bench"})
            out["flag"].append(until(gw2, key, 403))
            time.sleep(random.uniform(0, 1.0))
            admin(gw1, "PUT", "/admin/accounts/bench/verdict", {"verdict": "clear", "reason": "bench"})
            out["clear"].append(until(gw2, key, 200))
            made = admin(gw1, "POST", "/admin/accounts/bench/keys", {})
            until(gw2, made["key"], 200)  # gateway 2 has it cached now
            time.sleep(random.uniform(0, 2.0))
            admin(gw1, "DELETE", f"/admin/keys/{made['key_id']}")
            out["revoke"].append(until(gw2, made["key"], 401))
        procs.stop(f"{name}-gw1")
        procs.stop(f"{name}-gw2")
        return out
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        server.dispose()


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="changes of each kind per backend")
    ap.add_argument("--backends", default="redis,nats,poll")
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cuirass-push-") as tmp, Procs(Path(tmp)) as procs:
        upstream = f"http://127.0.0.1:{start_nginx(procs, None)}/json/v1"
        for name in args.backends.split(","):
            results[name] = run_backend(procs, upstream, name, BACKENDS[name], args.n)
    lines = [
        "## Verdicts and revocations, pushed (issue 18)",
        "",
        f"Command: `.venv/bin/python bench/push_delay.py --n {args.n}`, {platform.machine()} "
        f"{os.cpu_count()}-core development machine shared with other jobs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Two gateways (one worker each, detection off) on "
        "one PostgreSQL database, defaults `detection.refresh_s` 1 s and `auth.cache_ttl_s` 2 s; each change is "
        "made through gateway 1's admin API and timed from its answer until gateway 2's answer to a probe "
        "request changes (includes one probe's round trip).",
        "",
        "| push backend | override applied p50 / p99 / max ms | key revocation refused p50 / p99 / max ms | changes |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        over = r["flag"] + r["clear"]
        label = {"redis": "Redis pub/sub", "nats": "NATS core", "poll": "none (polling, today)"}[name]
        cells = [
            " / ".join(f"{1000 * v:.1f}" for v in (statistics.median(xs), pct(xs, 0.99), max(xs)))
            for xs in (over, r["revoke"])
        ]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {len(over)} + {len(r['revoke'])} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
