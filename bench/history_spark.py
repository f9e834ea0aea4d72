"""History replay: the local engine in one process, with digesting in --jobs 1 and 2 processes (buffered
and --presorted), and Apache Spark `local[2]` (issue 18: >= 16k events/s on 2 cores, 28.8M events in <= 30 min).

The traffic is bench/detect_replay.py's (the lab generator, seed 7: 5,000 benign accounts, campaigns
of 1,000 accounts, 14 days, ~1.1M events), generated once into --cache (git-ignored); a run of N
events replays its first N lines (a time-ordered prefix). Each engine runs as `cuirass detect run`
in a fresh subprocess; peak memory is the sampled sum of RSS over the process tree (driver JVM and
Python workers and digesting processes included). The Spark run's step times (its progress lines) give
the profile. Every report is compared with the single process's: they must be the same.

    .venv/bin/python bench/history_spark.py                    # 1M events
    .venv/bin/python bench/history_spark.py --sizes 100000 --json
    .venv/bin/python bench/history_spark.py --no-spark         # the local engine only
    .venv/bin/python bench/history_spark.py --scale 10 --sizes 10000000 --default-only --cache bench/results/detect-cache

`--scale 10` generates ten times the accounts over the same 14 days (~11M events, ~22 GB); `--default-only` runs
the local engine as a user would (`detect run` with no flags) instead of every `--jobs` setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect_replay import ensure_traffic  # the same traffic as the replay benchmark

TARGET_EVENTS, TARGET_RATE = 28_800_000, 16_000


def _tree(root: int) -> list[int]:
    """A process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _kind(pid: int) -> str:
    """jvm, workers (Spark's Python workers or the local engine's digesting processes) or driver (the
    cuirass process)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read()
    except OSError:
        return "driver"
    if b"java" in cmd.split(b"\0")[0]:
        return "jvm"
    return "workers" if b"pyspark" in cmd or b"multiprocessing" in cmd else "driver"


def timed(cmd: list[str]) -> dict[str, object]:
    """Run a command; wall seconds, peak RSS summed over its process tree and CPU seconds per kind of
    process (both sampled from /proc every 0.25 s: the cores were shared, so CPU time says more than
    wall time about what an idle machine would do), stdout and stderr."""
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds so far)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            rss = 0
            for pid in _tree(proc.pid):
                try:
                    with open(f"/proc/{pid}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/statm") as fh:
                        rss += int(fh.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    continue
                # Read the kind every time: Spark's launcher script exec()s the JVM under the same pid.
                cpu[pid] = (_kind(pid), (int(fields[11]) + int(fields[12])) / ticks)
            peak[0] = max(peak[0], rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    by_kind: dict[str, float] = {}
    for kind, seconds in cpu.values():
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
    return {"wall": time.perf_counter() - started, "cpu": by_kind, "peak": peak[0], "out": out, "err": err}


def prefix(traffic: Path, n: int, cache: Path) -> Path:
    path = cache / f"{traffic.stem}-{n}.jsonl"
    if not path.exists():
        with open(traffic, "rb") as src, open(path, "wb") as dst:
            dst.writelines(itertools.islice(src, n))
    return path


def steps(stderr: str) -> dict[str, float]:
    """Seconds per step from the Spark run's progress lines ("spark STEP: ... (S s)")."""
    out: dict[str, float] = {}
    for step, seconds in re.findall(r"^spark (\w+): .*\(([\d.]+) s\)$", stderr, re.M):
        out[step] = out.get(step, 0.0) + float(seconds)
    return out


def same(a: dict, b: dict) -> bool:
    """Every account's row (reasons included; scores to 9 places), the campaigns and the summary."""

    def key(r: dict) -> list:
        return [{**x, "score": round(x["score"], 9), "score_now": round(x["score_now"], 9)} for x in r["accounts"]]

    return key(a) == key(b) and a["campaigns"] == b["campaigns"] and a["summary"] == b["summary"]


LOCAL = {  # label -> `detect run` flags of the local engine
    "single process": ["--jobs", "0"],
    "local, 1 digesting process": ["--jobs", "1"],
    "local, 2 digesting processes": ["--jobs", "2"],
    "local, 2 digesting processes, --presorted": ["--jobs", "2", "--presorted"],
}
DEFAULT = {"local, default (2 digesting processes on 2 cores)": []}  # --default-only: what a user runs


def run(
    n: int, cache: Path, master: str, driver_memory: str, spark: bool = True, scale: int = 1, default_only: bool = False
) -> dict[str, object]:
    events = prefix(ensure_traffic(cache, scale), n, cache)
    cuirass = [sys.executable, "-m", "cuirass", "detect", "run", "--events", str(events), "--json"]
    runs: dict[str, dict[str, object]] = {}
    local = DEFAULT if default_only else LOCAL
    for i, (label, flags) in enumerate(local.items()):
        runs[label] = timed([*cuirass, *flags, "--out", str(cache / f"local{i}.json"), "--no-progress"])
        # Said at once: a later engine that fails ends the benchmark, and a 10M run is not cheap to repeat.
        print(json.dumps({label: _figures(runs[label], n)}), file=sys.stderr, flush=True)
    outs = [cache / f"local{i}.json" for i in range(len(local))]
    if spark:
        runs[f"Spark `{master}`"] = timed(
            [
                *cuirass,
                "--engine",
                "spark",
                "--master",
                master,
                "--out",
                str(cache / "spark.json"),
                "--progress",
                "--conf",
                "spark.ui.enabled=false",
                "--conf",
                f"spark.driver.memory={driver_memory}",
            ]
        )
        outs.append(cache / "spark.json")
    reports = [json.loads(out.read_text()) for out in outs]
    events_n = reports[0]["summary"]["events"]
    return {
        "events": events_n,
        "accounts": reports[0]["summary"]["accounts"],
        "campaign_jobs": reports[0]["summary"]["campaign_runs"],
        "engines": {
            label: {**_figures(r, events_n), "same_report": same(reports[0], report)}
            for (label, r), report in zip(runs.items(), reports)
        },
        "spark_steps": steps(str(runs[f"Spark `{master}`"]["err"])) if spark else {},
    }


def _figures(run: dict[str, object], events: int) -> dict[str, object]:
    wall, cpu_by_kind = float(run["wall"]), dict(run["cpu"])
    cpu = sum(cpu_by_kind.values())
    return {
        "cpu_by_kind": cpu_by_kind,
        "wall": wall,
        "cpu": cpu,
        "rate": events / wall,
        "cpu_rate": events / cpu,
        "peak_mb": float(run["peak"]) / 2**20,
    }


def markdown(rows: list[dict], argv: list[str], master: str) -> str:
    with open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    lines = [
        f"Command: `{' '.join(['.venv/bin/python', 'bench/history_spark.py', *argv])}`. Machine: {os.cpu_count()} cores "
        f"({cpu}), {platform.system()}, Python {platform.python_version()}; the cores were shared with other jobs.",
        "",
        "| events | accounts | engine | wall | events/s | CPU time | events per CPU-second | peak RSS (process tree) | same report |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label, e in r["engines"].items():
            lines.append(
                f"| {r['events']:,} | {r['accounts']:,} | {label} | {e['wall']:.1f} s | {e['rate']:,.0f} | "
                f"{e['cpu']:.0f} s | {e['cpu_rate']:,.0f} | {e['peak_mb']:,.0f} MB | {'yes' if e['same_report'] else '**no**'} |"
            )
    last = rows[-1]
    scale = TARGET_EVENTS / last["events"]
    lines += [
        "",
        f"Projection to {TARGET_EVENTS / 1e6:.1f}M events (linear in events; target "
        f"{TARGET_EVENTS / TARGET_RATE / 60:.0f} min): "
        + ", ".join(f"{label} {e['wall'] * scale / 60:.0f} min" for label, e in last["engines"].items())
        + ".",
    ]
    s = last["spark_steps"]
    if s:
        spark = next(e for label, e in last["engines"].items() if label.startswith("Spark"))
        total = sum(s.values())
        parallel = s.get("digest", 0) + s.get("facts", 0) + s.get("pass1", 0) + s.get("pass2", 0)
        serial = s.get("campaigns", 0)
        lines += [
            "",
            f"Spark steps at {last['events']:,} events: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in s.items())
            + f"; JVM start, writing the report and the rest {spark['wall'] - total:.1f} s. CPU time by process: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(spark["cpu_by_kind"].items()))
            + f". With c cores of executors the per-account steps ({parallel:.0f} s here on 2 cores) divide by c/2 "
            f"while the campaign jobs on the driver ({serial:.0f} s) do not: "
            + ", ".join(f"{c} cores ~{(parallel * 2 / c + serial) * scale / 60:.0f} min" for c in (2, 8, 32))
            + ".",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--cache", type=Path, default=Path("bench/results/history"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--no-spark", dest="spark", action="store_false", help="measure the local engine only")
    parser.add_argument(
        "--scale", type=int, default=1, help="traffic of N times the accounts over the same 14 days (10: ~11M events)"
    )
    parser.add_argument(
        "--default-only", action="store_true", help="the local engine at its defaults only (not every --jobs)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        print(f"history: {n:,} events, local then Spark ...", file=sys.stderr, flush=True)
        rows.append(run(n, args.cache, args.master, args.driver_memory, args.spark, args.scale, args.default_only))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows, sys.argv[1:], args.master))


if __name__ == "__main__":
    main()
