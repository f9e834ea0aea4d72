"""Bounded work on the flagged path: rewrite time of hostile 100 KB answers, and the event loop's lag meanwhile.

    .venv/bin/python bench/rewrite_bounds.py            # the table below, then a long fuzz run (500 examples)
    .venv/bin/python bench/rewrite_bounds.py --no-fuzz

For each hostile answer: wall and thread-CPU seconds of the flagged band's text defenses (strip_reasoning
with a summary, perturb, canary at rate 1, watermark), and the largest gap a 1 ms asyncio ticker sees while
the same rewrite runs through respond.apply's async entry point (a worker thread), next to the gap when the
rewrite runs on the event loop itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.respond.test_bounded_rewrite import _CTX, CHAIN, hostile  # noqa: E402

from cuirass.respond.apply import rewrite_response, rewrite_whole  # noqa: E402

CASES = {
    "final answer is + 500 spaces": "final answer is" + " " * 500,
    "10 KB of backticks": "`" * 10_000,
    "one 20 KB token": "a" * 20_000,
    "20 KB of dots": "." * 20_000,
    "\\boxed{ x 20,000": "\\boxed{" * 20_000,
    "100 KB '1+1=2' lines": hostile("1+1=2\n"),
    "100 KB '- a' items": hostile("- a\n"),
    "100 KB code": hostile("def f(x):\n    return x\n"),
    "100 KB '“\\'' ": hostile("“'"),
}


def chain(text: str) -> str:
    for d in CHAIN:
        text = d.transform(text, _CTX)
    return text


async def lag_during(text: str, in_thread: bool) -> float:
    """The longest time the event loop could not run a 1 ms ticker while `text` was rewritten."""
    worst, stop = 0.0, False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    resp = {"choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}]}
    plan = SimpleNamespace(rewrite=chain, strip_fields=False, max_chars=100_000)
    if in_thread:
        await rewrite_response(resp, True, plan)  # type: ignore[arg-type]
    else:
        rewrite_whole(resp, True, chain, False, 100_000)
    stop = True
    await task
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-fuzz", action="store_true")
    ap.add_argument("--examples", type=int, default=500)
    args = ap.parse_args()
    print(f"switch interval {sys.getswitchinterval() * 1000:.0f} ms")
    print(f"{'answer':32s} {'wall s':>7s} {'cpu s':>7s} {'loop lag, thread':>17s} {'loop lag, inline':>17s}")
    for name, text in CASES.items():
        t, c = time.perf_counter(), time.thread_time()
        chain(text)
        wall, cpu = time.perf_counter() - t, time.thread_time() - c
        threaded = asyncio.run(lag_during(text, True))
        inline = asyncio.run(lag_during(text, False))
        print(f"{name:32s} {wall:7.3f} {cpu:7.3f} {threaded * 1000:14.0f} ms {inline * 1000:14.0f} ms")
    if not args.no_fuzz:
        env = {**os.environ, "CUIRASS_FUZZ_EXAMPLES": str(args.examples)}
        sys.exit(
            subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "tests/respond/test_bounded_rewrite.py",
                    "-k",
                    "building_blocks",
                ],
                cwd=ROOT,
                env=env,
            )
        )


if __name__ == "__main__":
    main()
