"""Replay throughput and memory of `cuirass detect run`, at 100k, 300k and 1M events (issue 3 target:
1M events in <= 5 minutes on 2 cores with <= 4 GB).

Traffic comes from the lab generator (`cuirass.lab.traffic`, the issue-3 benchmark mix: 5,000 benign
accounts, campaigns of 1,000 accounts, 14 days, ~1.1M events), generated once into --cache (default bench/results/detect-cache, git-ignored). Each size
N replays the first N events of that log (a time-ordered prefix) in a fresh subprocess, as
`cuirass detect run --jobs 0` does (read JSON lines, digest, sort, detect, report, all in one process), so
peak RSS is per size. bench/history_spark.py measures `detect run` with digesting processes and on Spark.

    .venv/bin/python bench/detect_replay.py                      # 100k, 300k, 1M
    .venv/bin/python bench/detect_replay.py --sizes 100000 --json
    .venv/bin/python bench/detect_replay.py --presorted           # stream instead of buffering
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SIZES = (100_000, 300_000, 1_000_000)


def ensure_traffic(cache: Path, scale: int = 1) -> Path:
    """The benchmark traffic log, generated on first use (seeded: always the same bytes). With `scale` N > 1, N
    times the accounts over the same 14 days (about N times the events; bench/history_spark.py's 10M events)."""
    path = cache / ("traffic.jsonl" if scale == 1 else f"traffic-x{scale}.jsonl")
    if path.exists():
        return path
    from cuirass.lab.traffic import PRESETS, TrafficConfig, generate
    from cuirass.lab.traffic.campaigns import CORE

    cache.mkdir(parents=True, exist_ok=True)
    specs = (PRESETS[kind] for kind in CORE)  # the issue-3 mix, without the issue-19 variants
    campaigns = tuple(dataclasses.replace(spec, accounts=(5 if spec.independent else 1000) * scale) for spec in specs)
    print(f"generating benchmark traffic into {path} (once) ...", file=sys.stderr, flush=True)
    config = TrafficConfig(seed=7, benign_accounts=5000 * scale, campaigns=campaigns, days=14.0)
    generate(config, path, progress=True)
    return path


def measure(path: Path, n: int, presorted: bool = False) -> dict[str, float]:
    """Replay the first n events of `path` in this process; wall/CPU seconds and peak RSS."""
    import orjson

    from cuirass.detect.replay import replay
    from cuirass.events.record import Event

    def events():
        with open(path, "rb") as fh:
            for line in itertools.islice(fh, n):
                yield Event.from_dict(orjson.loads(line))

    wall, cpu = time.perf_counter(), time.process_time()
    report = replay(events(), presorted=presorted)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = report["summary"]
    return {
        "events": summary["events"],
        "accounts": summary["accounts"],
        "flagged": summary["flagged"],
        "campaign_runs": summary["campaign_runs"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "events_per_s": round(summary["events"] / wall),
        "peak_rss_mb": round(peak_kb / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--cache", type=Path, default=Path("bench/results/detect-cache"))
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--presorted", action="store_true", help="stream the (time-ordered) log instead of buffering it"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = parser.parse_args()
    path = ensure_traffic(args.cache)
    if args.one:
        print(json.dumps(measure(path, args.one, args.presorted)))
        return
    results = []
    for n in args.sizes:
        flags = ["--presorted"] if args.presorted else []
        out = subprocess.run(
            [sys.executable, __file__, "--cache", str(args.cache), "--one", str(n), *flags],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if not args.json:
            r = results[-1]
            print(
                f"{r['events']:>9,} events  {r['wall_s']:7.1f} s wall  {r['cpu_s']:7.1f} s cpu  "
                f"{r['events_per_s']:>7,} ev/s  peak RSS {r['peak_rss_mb']:>6,} MB  "
                f"({r['accounts']:,} accounts, {r['campaign_runs']} campaign jobs)",
                flush=True,
            )
    if len(results) >= 2:
        last = results[-1]
        per_event = last["wall_s"] / last["events"]
        projection = {
            "events": 28_800_000,
            "wall_s_linear": round(per_event * 28_800_000),
            "note": "linear in events at the largest size's rate; buffered replay holds every digest "
            "(memory ~N), --presorted streaming holds only per-account state",
        }
        if args.json:
            print(json.dumps({"results": results, "projection_28_8M": projection}, indent=2))
        else:
            print(f"projected 28.8M events: ~{projection['wall_s_linear'] / 60:.0f} min at the 1M rate")
    elif args.json:
        print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
