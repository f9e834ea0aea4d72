"""Local engine speed (issue 5): tokens/s with no logits processor, with `logit_watermark`, with `antidistill`.

    .venv/bin/python bench/engine_speed.py            # writes the "Local engine (issue 5)" section of BENCHMARKS.md
    .venv/bin/python bench/engine_speed.py --quick    # fewer runs, prints only

Measures the engine itself (cuirass.engine.batch.run_choice: forward pass with KV cache,
processors, sampling, incremental detokenisation), one request at a time, on the tiny random GPT-2
of the tests and, when it is shipped, the built-in reference model; then the throughput of batched
decoding (cuirass.engine.batch.Scheduler) with 1, 4 and 16 choices running at once. Also the processor's own cost
per token at the reference vocabulary and at GPT-2's 50,257 tokens, to show how it scales.
`antidistill` runs two forward passes of its proxy per token (the built-in decoy for the reference
model; the tiny model is its own proxy), so its cost is that of the proxy, not of the teacher.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from cuirass.engine.batch import run_choice
from cuirass.engine.loader import load_model, resolve_path
from cuirass.engine.params import parse
from cuirass.engine.tiny import write_tiny_model
from cuirass.marks.logit.keyed import LISTS, MIN_PROB
from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.antidistill import Antidistill
from cuirass.respond.logit.watermark import LogitWatermark

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Local engine (issue 5)"
KEY = bytes(range(32))


SETTINGS = ("none", "logit_watermark", "antidistill")


def tokens_per_s(lm: Any, runs: int, max_tokens: int, proxy: str) -> dict[str, float]:
    """Median tokens/s (prompt pass included) per setting; the settings alternate run by run with the same
    seeds, so load from other jobs on the machine hits them alike."""
    ctx = DefenseContext(account="a", cohort="c000", prompt="", endpoint="", model="m", key=KEY)
    make = {
        "none": list,
        "logit_watermark": lambda: [LogitWatermark().processor(ctx, lm.tokenizer)],
        "antidistill": lambda: [Antidistill(proxy=proxy).processor(ctx, lm.tokenizer)],
    }
    rates: dict[str, list[float]] = {k: [] for k in SETTINGS}
    for seed in range(runs):
        req = parse(
            lm,
            "/v1/completions",
            {"prompt": "Tom has 3 apples and buys 4 more.", "max_tokens": max_tokens, "seed": seed, "temperature": 1.0},
        )
        for name in SETTINGS:
            procs = make[name]()
            t = time.perf_counter()
            c = run_choice(lm, req, 0, procs, threading.Event())
            rates[name].append(len(c.token_ids) / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


BATCHES = (1, 4, 16)


def batched_tokens_per_s(lm: Any, rows: int, max_tokens: int, waves: int = 3, proxy: str | None = None) -> float:
    """Total tokens/s of `waves * rows` requests queued at once on a Scheduler decoding `rows` together
    (continuous batching: a finished choice's row is refilled at the next step); with `proxy`, every
    request carries `antidistill` (its rows share proxy passes)."""
    from cuirass.engine.batch import Scheduler
    from cuirass.engine.generate import ChoiceRun

    ctx = DefenseContext(account="a", cohort="c000", prompt="", endpoint="", model="m", key=KEY)
    engine = Scheduler(lambda: lm, rows)
    engine.loaded.result()
    runs = [
        ChoiceRun(
            lm,
            parse(
                lm,
                "/v1/completions",
                {
                    "prompt": f"Tom has {i} apples and buys 4 more.",
                    "max_tokens": max_tokens,
                    "seed": i,
                    "temperature": 1.0,
                },
            ),
            0,
            [Antidistill(proxy=proxy).processor(ctx, lm.tokenizer)] if proxy else [],
            threading.Event(),
        )
        for i in range(waves * rows)
    ]
    t = time.perf_counter()
    made = sum(len(f.result().token_ids) for f in [engine.submit(r) for r in runs])
    dt = time.perf_counter() - t
    engine.close()
    return made / dt


def processor_us(vocab: int, min_prob: float, n: int = 300) -> float:
    """Microseconds per call of the watermark processor alone (default options but `min_prob`), for a
    vocabulary of this size, at a step where the model hesitates between 8 tokens (the rest unlikely)."""
    ctx = DefenseContext(account="a", cohort="c", prompt="", endpoint="", model="m", key=KEY)
    proc = LogitWatermark(min_prob=min_prob, protect_numbers=False).processor(ctx, None)
    scores = torch.full((1, vocab), -10.0)
    scores[0, torch.randperm(vocab)[:8]] = 0.0
    ids = torch.randint(0, vocab, (1, 64))
    proc(ids, scores)
    t = time.perf_counter()
    for i in range(n):
        ids[0, -1] = i
        proc(ids, scores)
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    runs, max_tokens = (3, 100) if args.quick else (7, 200)
    models: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = str(write_tiny_model(tmp))
        models.append(("tiny random GPT-2 (tests)", load_model(tiny, device="cpu"), tiny))
        if (resolve_path("builtin:reference") / "config.json").is_file():
            models.append(("built-in reference model", load_model("builtin:reference", device="cpu"), "builtin:decoy"))
        rows = []
        for label, lm, proxy in models:
            params = sum(p.numel() for p in lm.model.parameters())
            tokens_per_s(lm, 1, 20, proxy)  # warm-up (and the proxy's task gradient, computed once)
            r = tokens_per_s(lm, runs, max_tokens, proxy)
            r.update({f"batch {b}": batched_tokens_per_s(lm, b, max_tokens) for b in BATCHES})
            r.update({f"antidistill batch {b}": batched_tokens_per_s(lm, b, max_tokens, proxy=proxy) for b in BATCHES})
            rows.append((label, params, lm.vocab_size, r))
            print(f"{label}: " + ", ".join(f"{k} {v:.0f} tok/s" for k, v in r.items()), file=sys.stderr)
    us = {v: (processor_us(v, MIN_PROB), processor_us(v, 0.0)) for v in sorted({r[2] for r in rows} | {50257, 151936})}
    for v, (t, t_all) in us.items():
        print(f"processor alone, vocab {v}: {t:.0f} µs/token ({t_all:.0f} with min_prob 0)", file=sys.stderr)
    section = render(rows, us, runs, max_tokens)
    print(section)
    if not args.quick:
        from report import write_section  # bench/report.py

        write_section(ROOT / "BENCHMARKS.md", section)


def render(rows: list[tuple[Any, ...]], us: dict[int, tuple[float, float]], runs: int, max_tokens: int) -> str:
    cpu = platform.processor() or platform.machine()
    out = [
        SECTION,
        "",
        f"`.venv/bin/python bench/engine_speed.py` on {os.cpu_count()} CPU cores ({cpu}, shared with other jobs), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, float32, one request at a time; "
        f"median of {runs} generations of up to {max_tokens} tokens each, the three settings alternating with the same seeds (temperature 1, prompt pass included). "
        "Engine only (no HTTP); the gateway adds its usual per-request overhead (see Gateway overhead). "
        "The cores are shared with other jobs, so absolute rates vary up to ~3x between runs: compare columns within one run.",
        "",
        "| model | parameters | vocabulary | no processor (tok/s) | `logit_watermark` (tok/s) | `antidistill` (tok/s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, params, vocab, r in rows:
        base = r["none"]
        out.append(
            f"| {label} | {params / 1e6:.2f} M | {vocab:,} | {base:.0f} | {r['logit_watermark']:.0f} "
            f"({(r['logit_watermark'] / base - 1) * 100:+.0f}%) | {r['antidistill']:.0f} "
            f"({(r['antidistill'] / base - 1) * 100:+.0f}%) |"
        )
    out += [
        "",
        f"Batched decoding (`cuirass.engine.batch.Scheduler`, as the gateway runs it with `max_concurrency`): "
        f"three times as many requests as rows (up to {max_tokens} tokens each) queued at once, total tokens/s "
        "with 1, 4 and 16 decoded together (temperature 1), with no processor and with `antidistill` on every "
        "request (rows sharing a proxy run its two forward passes once per step for all of them):",
        "",
        "| model | setting | " + " | ".join(f"{b} at once (tok/s)" for b in BATCHES) + " |",
        "|---|---|" + "---:|" * len(BATCHES),
    ]
    for label, _params, _vocab, r in rows:
        for setting, prefix in (("no processor", "batch"), ("`antidistill`", "antidistill batch")):
            one = r[f"{prefix} 1"]
            out.append(
                f"| {label} | {setting} | "
                + " | ".join(
                    f"{r[f'{prefix} {b}']:.0f}" + ("" if b == 1 else f" ({r[f'{prefix} {b}'] / one:.1f}x)")
                    for b in BATCHES
                )
                + " |"
            )
    out += [
        "",
        f"The watermark processor by itself, default options ({LISTS} green lists), at a step where the model "
        "hesitates between 8 tokens: the entropy and the plausibility mask over the vocabulary, then BLAKE2b of the "
        f"context per list and splitmix64 for the tokens that may be boosted (probability >= {MIN_PROB}); with "
        "`min_prob: 0` every token of the vocabulary is hashed in every list:",
        "",
        "| vocabulary | µs per token (defaults) | µs per token (`min_prob: 0`) |",
        "|---:|---:|---:|",
    ]
    out += [f"| {v:,} | {t:.0f} | {t_all:.0f} |" for v, (t, t_all) in us.items()]
    out += [
        "",
        "Setting `OMP_WAIT_POLICY=PASSIVE` before torch loads (the loader does it) matters on a shared "
        "machine: with torch's spinning OpenMP threads a forward pass of the tiny model took ~200 ms "
        "instead of ~3 ms when other processes were busy on the same 2 cores.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    main()
