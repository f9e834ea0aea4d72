"""What the hardening of issue 16 costs on the hot path: the event spool and the complete edge validation.

    .venv/bin/python bench/hardening_overhead.py [--baseline-ref 50d0a41] [--seconds 8] [--rounds 2]

In one run, on 127.0.0.1 only, with the fixed nginx upstream (core 0, with wrk) and each gateway with
1 worker pinned to core 1, non-streaming chat completions:

- `before`: Cuirass at `--baseline-ref` (checked out into a temporary git worktree, run from its source);
- `spool off`: this tree with `events.spool: false` (edge validation, no spool);
- `spool batch` (the default) and `spool always` (an fsync per request): this tree as shipped.

Load: wrk closed loop at concurrency 1 (added latency, no queueing) and 32 (throughput), `--rounds`
alternating rounds so drift on a shared machine hits every target alike. Then the validation cost alone:
`validate_request` on the benchmark body and on a 20-message tool-calling conversation, in-process.

Results: bench/results/hardening_overhead-*.json and the section "## Hardening overhead (issue 16)" of
BENCHMARKS.md (written by hand from the printed table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, ROOT, VENV, Procs, chat_body, free_port, start_nginx, wait_http, wrk

LOAD_CPU, GATEWAY_CPU = "0", "1"


def start_gateway(procs: Procs, name: str, upstream: str, src: Path, events: dict[str, Any]) -> tuple[str, str]:
    """`cuirass serve` from source tree `src` (PYTHONPATH), model `m` on the nginx upstream; (base url, key)."""
    d = procs.workdir / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "cuirass.yaml"
    cfg.write_text(
        json.dumps(
            {
                "models": [{"name": "m", "upstream": {"base_url": upstream, "model": "m"}}],
                "events": events,
                "detection": {"enabled": False},
            }
        )
    )
    env = {"PYTHONPATH": str(src), "CUIRASS_ADMIN_KEY": "sk-bench-admin-0123456789"}
    py = str(VENV / "bin" / "python")
    out = subprocess.run(
        [py, "-m", "cuirass", "accounts", "create", "bench", "--with-key", "--json", "--data-dir", str(d)],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    key = json.loads(out.stdout)["key"]
    port = free_port()
    p = procs.start(
        name,
        [py, "-m", "cuirass", "serve", "--config", str(cfg), "--data-dir", str(d), "--port", str(port)],
        cpus=GATEWAY_CPU,
        env=env,
    )
    wait_http(f"http://127.0.0.1:{port}/health/readiness", 60, p)
    return f"http://127.0.0.1:{port}", key


def validation_cost() -> dict[str, float]:
    """Microseconds per `validate_request` call on a small and on a long tool-calling body."""
    from cuirass.gateway.validate import validate_request

    small = json.loads(chat_body(False))
    turns: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful assistant."}]
    for i in range(10):
        turns.append({"role": "user", "content": [{"type": "text", "text": f"Step {i}: look up the weather."}]})
        turns.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            }
        )
        turns.append({"role": "tool", "tool_call_id": f"call_{i}", "content": "12 C, cloudy"})
    long = {
        "model": "m",
        "messages": turns,
        "max_tokens": 100,
        "temperature": 0.7,
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    }
    out = {}
    for name, body in (("benchmark body", small), ("31-message tool conversation", long)):
        n = 20_000
        best = min(timeit.repeat(lambda b=body: validate_request(b, "/v1/chat/completions"), number=n, repeat=5))
        out[name] = best / n * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-ref", default="50d0a41", help="git ref of the 'before' gateway")
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds over all targets")
    args = ap.parse_args()
    body = chat_body(False)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as td, Procs(Path(td)) as procs:
        base = Path(td) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline_ref],
            check=True,
            capture_output=True,
        )
        try:
            nginx = f"http://127.0.0.1:{start_nginx(procs, LOAD_CPU)}/json/v1"
            targets = {
                "before": start_gateway(procs, "before", nginx, base / "src", {}),
                "spool off": start_gateway(procs, "spool-off", nginx, ROOT / "src", {"spool": False}),
                "spool batch (default)": start_gateway(procs, "spool-batch", nginx, ROOT / "src", {}),
                "spool always": start_gateway(procs, "spool-always", nginx, ROOT / "src", {"spool_fsync": "always"}),
            }
            for url, key in targets.values():  # warm up each gateway
                wrk(url + "/v1/chat/completions", body, key, 4, 2, LOAD_CPU)
            for r in range(args.rounds):
                for name, (url, key) in targets.items():
                    for c in (1, 32):
                        run = wrk(url + "/v1/chat/completions", body, key, c, args.seconds, LOAD_CPU)
                        results.setdefault(name, {}).setdefault(c, []).append(run)
                        print(
                            f"round {r + 1} {name:24s} c={c:<3d} p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f}"
                            f" ms  {run['rps']:7.0f} req/s  errors {run['error_count']}",
                            flush=True,
                        )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    summary = {
        name: {
            c: {
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "rps": statistics.median(r["rps"] for r in runs),
                "errors": sum(r["error_count"] for r in runs),
            }
            for c, runs in by_c.items()
        }
        for name, by_c in results.items()
    }
    validation = validation_cost()
    print("\n| gateway (1 worker, core 1) | c=1 p50 / p99 ms | c=32 p50 / p99 ms | c=32 req/s |")
    print("|---|---|---|---|")
    for name, s in summary.items():
        print(
            f"| {name} | {s[1]['p50_ms']:.2f} / {s[1]['p99_ms']:.2f} | {s[32]['p50_ms']:.2f} / {s[32]['p99_ms']:.2f}"
            f" | {s[32]['rps']:.0f} |"
        )
    print("\nvalidate_request: " + "; ".join(f"{k}: {v:.1f} µs" for k, v in validation.items()))
    out = BENCH / "results" / f"hardening_overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "summary": summary,
                "runs": results,
                "validation_us": validation,
                "baseline_ref": args.baseline_ref,
                "seconds": args.seconds,
            },
            indent=1,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
