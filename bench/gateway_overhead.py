"""Gateway overhead: Cuirass in front of an upstream versus the upstream directly, with LiteLLM as the peer.

    .venv/bin/python bench/gateway_overhead.py [--seconds 4] [--no-litellm] [--no-mock] [--no-markdown]

(`make bench` runs exactly this.) In one run, on 127.0.0.1 only:

1. Fixed upstream: nginx (C, one worker, core 0) answering a fixed chat.completion (`/json/v1/...`) and a
   fixed 32-token SSE stream (`/sse/v1/...`). Targets: nginx directly; Cuirass, 1 worker pinned to core 1;
   Cuirass, 2 workers on both cores; LiteLLM proxy 1.82.6, 1 worker pinned to core 1 (the same budget as
   Cuirass 1 worker), and unpinned for its peak throughput. Load: wrk (core 0), non-streaming and streaming:
   closed loop at concurrency 1, 32 and 128 (latency p50/p99 and throughput), and fixed offered rates
   (exponential think time per connection) with 32 and 128 connections, well below saturation; time to
   first token with a sequential client.
2. The mock upstream (`cuirass mock-upstream`, Python, core 0, streaming at 1000 tokens/s): direct,
   Cuirass 1 worker and LiteLLM; latency at concurrency 1, TTFT, and throughput at 128.

Results: bench/results/gateway_overhead-*.json (every run, with CPU used per request by the target and the
CPU used by other work on the machine) and the section "## Gateway overhead (issue 2)" of BENCHMARKS.md.
Every process started here is stopped at the end; the whole run takes about 7 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
from harness import (
    BENCH,
    CUIRASS,
    LITELLM_VENV,
    LITELLM_VERSION,
    ROOT,
    CpuMeter,
    Procs,
    chat_body,
    free_port,
    litellm_available,
    post,
    start_cuirass,
    start_litellm,
    start_nginx,
    wait_http,
    wrk,
)
from ttft import measure_ttft

LOAD_CPU = "0"  # wrk, the sequential TTFT client and the upstream
GATEWAY_CPU = "1"  # a 1-worker gateway (Cuirass or LiteLLM)
BOTH = "0,1"
CONCURRENCY = (1, 32, 128)
FIXED = ((32, 10), (32, 50), (32, 400), (128, 400))  # (connections, offered req/s)
MOCK_TPS = 1000


def ensure_litellm() -> bool:
    """LiteLLM in its own venv (PEERS.md); installed on first use. False if that fails."""
    if litellm_available():
        return True
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
            timeout=1200,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  LiteLLM unavailable: {exc}", flush=True)
        return False
    return litellm_available()


def wait_quiet(budget: dict[str, float], limit: float = 0.3) -> float:
    """Wait (from a shared budget of seconds) while other work on the machine uses > `limit` cores."""
    while True:
        with CpuMeter(set(), set()) as m:
            time.sleep(1.0)
        if m.foreign_cores <= limit or budget["s"] <= 0:
            return m.foreign_cores
        print(f"  machine busy with other work ({m.foreign_cores:.2f} cores); waiting", flush=True)
        time.sleep(2.0)
        budget["s"] -= 3.0


def check(urls: dict[str, str], key: str | None, models: dict[str, str]) -> None:
    """One non-streaming and one streaming request must succeed before a target is measured."""
    status, raw = post(urls["json"], chat_body(False, models["json"]), key)
    if status != 200 or not json.loads(raw)["choices"][0]["message"]["content"]:
        raise RuntimeError(f"non-streaming check failed: HTTP {status} {raw[:300]!r}")
    status, raw = post(urls["stream"], chat_body(True, models["stream"]), key)
    if status != 200 or b"data: [DONE]" not in raw:
        raise RuntimeError(f"streaming check failed: HTTP {status} {raw[:300]!r}")


class Plan:
    """What to run against one target."""

    def __init__(
        self, concurrency: tuple[int, ...] = CONCURRENCY, fixed: tuple[tuple[int, int], ...] = FIXED, ttft: bool = True
    ) -> None:
        self.concurrency, self.fixed, self.ttft = concurrency, fixed, ttft


FULL = Plan()
PEAK_ONLY = Plan(concurrency=(32, 128), fixed=(), ttft=False)
MOCK_PLAN = Plan(concurrency=(1, 32, 128), fixed=(), ttft=True)


def _line(name: str, mode: str, label: str, r: dict[str, Any]) -> None:
    print(
        f"  {name:20s} {mode:6s} {label:11s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f}  p99 {r['p99_ms']:7.2f} ms"
        f"  err {r['error_count']}  cpu/req {r['target_cpu_us_per_req']:5.0f} us  other work {r['foreign_cores']}",
        flush=True,
    )


def measure(
    name: str,
    urls: dict[str, str],
    key: str | None,
    models: dict[str, str],
    procs: Procs,
    sessions: set[int],
    seconds: float,
    plan: Plan,
    quiet: dict[str, float],
) -> dict[str, Any]:
    """All runs for one target: per mode, closed loop at each concurrency, fixed rates; then TTFT."""
    check(urls, key, models)
    res: dict[str, Any] = {"closed": {}, "fixed": {}, "ttft": None, "other_work_cores_before": wait_quiet(quiet)}
    kw: dict[str, Any] = {"target": sessions, "own": procs.sessions()}
    peak = {}
    for mode in ("json", "stream"):
        url, body = urls[mode], chat_body(mode == "stream", models[mode])
        wrk(url, body, key, 32, 2, LOAD_CPU, **kw)  # warm pools, caches and the event store
        closed = res["closed"][mode] = {}
        for c in plan.concurrency:
            closed[str(c)] = r = wrk(url, body, key, c, seconds, LOAD_CPU, **kw)
            _line(name, mode, f"c={c}", r)
        peak[mode] = max(v["rps"] for v in closed.values())
        fixed = res["fixed"][mode] = {}
        for c, rate in plan.fixed:
            if rate > 0.6 * peak[mode]:
                fixed[f"{c}@{rate}"] = {"skipped": f"above 60% of this target's peak ({peak[mode]:.0f} req/s)"}
                continue
            fixed[f"{c}@{rate}"] = r = wrk(url, body, key, c, seconds, LOAD_CPU, rate=rate, **kw)
            _line(name, mode, f"c={c}@{rate}/s", r)
    if plan.ttft:
        n = 200 if peak["stream"] > 300 else 60
        t = res["ttft"] = measure_ttft(urls["stream"], chat_body(True, models["stream"]), key, n=n, warmup=10)
        print(
            f"  {name:20s} ttft   c=1         p50 {t['ttft_p50_ms']:.2f}  p99 {t['ttft_p99_ms']:.2f} ms"
            f"  (n={t['requests']}, err {t['errors']})",
            flush=True,
        )
    return res


Starter = Callable[[], tuple[dict[str, str], "str | None", dict[str, str], set[int]]]


def run_target(
    procs: Procs, name: str, proc_name: str, start: Starter, seconds: float, plan: Plan, quiet: dict[str, float]
) -> dict[str, Any]:
    print(name, flush=True)
    try:
        urls, key, models, sessions = start()
    except Exception as exc:  # noqa: BLE001 - a target that does not start is reported, not fatal
        print(f"  did not start: {exc}\n{procs.log_tail(proc_name)}", flush=True)
        return {"error": f"did not start: {exc}"}
    try:
        return measure(name, urls, key, models, procs, sessions, seconds, plan, quiet)
    except Exception as exc:  # noqa: BLE001
        print(f"  failed: {exc}", flush=True)
        return {"error": str(exc)}


def _gateway(procs: Procs, kind: str, name: str, ups: dict[str, str], workers: int, cpus: str) -> Starter:
    def start() -> tuple[dict[str, str], str | None, dict[str, str], set[int]]:
        if kind == "cuirass":
            base, key = start_cuirass(procs, name, ups, workers, cpus)
        else:
            base, key = start_litellm(procs, name, ups, cpus)
        url = base + "/v1/chat/completions"
        return {"json": url, "stream": url}, key, {"json": "m", "stream": "m-stream"}, procs.sessions(name)

    return start


def _targets(procs: Procs, ups: dict[str, str], litellm: bool, prefix: str) -> list[tuple[str, str, Starter, Plan]]:
    t = [
        (
            "cuirass-1w",
            f"{prefix}cuirass-1w",
            _gateway(procs, "cuirass", f"{prefix}cuirass-1w", ups, 1, GATEWAY_CPU),
            FULL,
        ),
        ("cuirass-2w", f"{prefix}cuirass-2w", _gateway(procs, "cuirass", f"{prefix}cuirass-2w", ups, 2, BOTH), FULL),
    ]
    if litellm:
        t += [
            (
                "litellm-1w",
                f"{prefix}litellm-1w",
                _gateway(procs, "litellm", f"{prefix}litellm-1w", ups, 1, GATEWAY_CPU),
                FULL,
            ),
            (
                "litellm-1w-unpinned",
                f"{prefix}litellm-1w-unpinned",
                _gateway(procs, "litellm", f"{prefix}litellm-1w-unpinned", ups, 1, BOTH),
                PEAK_ONLY,
            ),
        ]
    return t


def phase(procs: Procs, args: argparse.Namespace, quiet: dict[str, float], upstream: str) -> dict[str, Any]:
    """Start the upstream, measure it directly, then each gateway in front of it, one at a time."""
    if upstream == "nginx":
        port = start_nginx(procs, LOAD_CPU)
        ups = {"m": f"http://127.0.0.1:{port}/json/v1", "m-stream": f"http://127.0.0.1:{port}/sse/v1"}
        direct_urls = {"json": ups["m"] + "/chat/completions", "stream": ups["m-stream"] + "/chat/completions"}
        plan, names = FULL, ("cuirass-1w", "cuirass-2w", "litellm-1w", "litellm-1w-unpinned")
    else:
        port = free_port()
        p = procs.start(
            upstream,
            [
                str(CUIRASS),
                "mock-upstream",
                "--port",
                str(port),
                "--model",
                "m",
                "--tokens",
                "32",
                "--tokens-per-s",
                str(MOCK_TPS),
            ],
            cpus=LOAD_CPU,
        )
        wait_http(f"http://127.0.0.1:{port}/v1/models", 30, p)
        ups = {"m": f"http://127.0.0.1:{port}/v1", "m-stream": f"http://127.0.0.1:{port}/v1"}
        direct_urls = {"json": ups["m"] + "/chat/completions", "stream": ups["m"] + "/chat/completions"}
        plan, names = MOCK_PLAN, ("cuirass-1w", "litellm-1w")
    out: dict[str, Any] = {}
    out["direct"] = run_target(
        procs,
        f"{upstream}: direct",
        upstream,
        lambda: (direct_urls, None, {"json": "m", "stream": "m"}, procs.sessions(upstream)),
        args.seconds,
        plan,
        quiet,
    )
    for label, proc_name, start, p_plan in _targets(procs, ups, args.litellm, "" if upstream == "nginx" else "mock-"):
        if label not in names:
            continue
        out[label] = run_target(
            procs,
            f"{upstream}: {label}",
            proc_name,
            start,
            args.seconds,
            p_plan if upstream == "nginx" else plan,
            quiet,
        )
        procs.stop(proc_name)
    procs.stop(upstream)
    return out


def machine() -> dict[str, Any]:
    def first(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")  # noqa: SIM115 - read once at exit
    mem = next((int(ln.split()[1]) // 1024 // 1024 for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)  # noqa: SIM115 - read once at exit
    import aiohttp
    import uvicorn

    commit = first(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = (
        subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
        ).stdout.strip()
        != ""
    )
    code = f"working tree at commit {commit}" + (" with uncommitted changes in src/" if dirty else "")
    if os.environ.get("CUIRASS_BENCH_CODE"):
        code = os.environ["CUIRASS_BENCH_CODE"]
    elif os.environ.get("PYTHONPATH"):
        code = f"PYTHONPATH={os.environ['PYTHONPATH']} (not the working tree; {code})"
    return {
        "code": code,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "nginx": first(["nginx", "-v"]),
        "wrk": first(["wrk", "-v"]),
        "uvicorn": uvicorn.__version__,
        "aiohttp": aiohttp.__version__,
        "litellm": LITELLM_VERSION if litellm_available() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each wrk run (default 4)")
    ap.add_argument("--no-litellm", dest="litellm", action="store_false", help="skip the LiteLLM peer")
    ap.add_argument("--no-mock", dest="mock", action="store_false", help="skip the mock-upstream phase")
    ap.add_argument("--no-markdown", dest="markdown", action="store_false", help="do not touch BENCHMARKS.md")
    ap.add_argument(
        "--at-commit",
        metavar="REV",
        help="measure src/ as of this git revision (exported with git archive) instead of the working tree",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="total seconds to wait for other work on the machine to calm down (default 30)",
    )
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            raise SystemExit(f"{tool} is missing: apt-get install nginx wrk util-linux")
    if args.litellm:
        args.litellm = ensure_litellm()
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process runs the TTFT client beside wrk and the upstream
    with tempfile.TemporaryDirectory(prefix="cuirass-src-") as src:
        if args.at_commit:
            rev = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", args.at_commit],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", src], input=archive.stdout, check=True)
            os.environ["PYTHONPATH"] = str(Path(src) / "src")  # children (cuirass serve) import this tree
            os.environ["CUIRASS_BENCH_CODE"] = f"commit {rev} (exported with git archive, not the working tree)"
        run(args)


def run(args: argparse.Namespace) -> None:
    t0 = time.time()
    quiet = {"s": args.quiet_wait}
    results: dict[str, Any] = {
        "started": t0,
        "machine": machine(),
        "seconds_per_run": args.seconds,
        "fixed_rates": FIXED,
        "mock_tokens_per_s": MOCK_TPS,
        "command": " ".join([".venv/bin/python bench/gateway_overhead.py", *sys.argv[1:]]),
    }
    with tempfile.TemporaryDirectory(prefix="cuirass-bench-") as td, Procs(Path(td)) as procs:
        results["nginx"] = phase(procs, args, quiet, "nginx")
        if args.mock:
            results["mock"] = phase(procs, args, quiet, "mock")
    results["elapsed_s"] = round(time.time() - t0, 1)
    out = BENCH / "results" / f"gateway_overhead-{time.strftime('%Y%m%d-%H%M%S', time.localtime(t0))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    md = report.render(results, out.relative_to(ROOT))
    print("\n" + md)
    if args.markdown:
        report.write_section(ROOT / "BENCHMARKS.md", md)
        print(f"updated {ROOT / 'BENCHMARKS.md'}")
    print(f"results: {out}  ({results['elapsed_s']} s)")


if __name__ == "__main__":
    main()
