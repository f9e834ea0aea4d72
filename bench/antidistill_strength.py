"""`antidistill` (issue 5): the teacher's own accuracy against the strength of antidistillation sampling.

    .venv/bin/python bench/antidistill_strength.py --write     # the "Antidistillation sampling" section
    .venv/bin/python bench/antidistill_strength.py --quick     # 40 problems, prints only

The built-in reference model answers held-out reference problems at its default sampling settings with
the `antidistill` processor at several strengths (proxy: the built-in decoy, task: the reference
problems), every strength on the same problems with the same sampling seed; strength 0 is the plain
teacher. What the poisoned answers do to a student is measured by `cuirass lab distill`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from scipy.stats import binomtest

from cuirass.engine.loader import load_model
from cuirass.lab.reference import evaluate as ev
from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.antidistill import Antidistill, proxy_pair

CTX = DefenseContext(account="a", cohort="c000", prompt="", endpoint="", model="m", key=b"k" * 32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="held-out problems per strength")
    ap.add_argument("--strengths", default="0,0.05,0.1,0.25,0.5,1")
    ap.add_argument("--proxy", default="builtin:decoy")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    args = ap.parse_args()
    n = 40 if args.quick else args.n
    lm = load_model("builtin:reference", device="cpu")
    lm.tokenizer.padding_side = "left"
    pair = proxy_pair(args.proxy, "builtin:reference", 64, 0.02)
    rows = []
    for s in (float(x) for x in args.strengths.split(",")):
        t = time.time()
        make = (lambda s=s: [Antidistill(proxy=args.proxy, strength=s).processor(CTX, lm.tokenizer)]) if s else None
        res = ev.score(lm.model, lm.tokenizer, n, seed=0, processors=make)
        k = round(res.accuracy * n)
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        rows.append((s, res.accuracy, ci.low, ci.high, time.time() - t, res.examples[0][1]))
        print(
            f"strength {s}: accuracy {res.accuracy:.1%} [{ci.low:.1%}, {ci.high:.1%}] in {time.time() - t:.0f} s",
            file=sys.stderr,
        )
    lines = [
        "## Antidistillation sampling (issue 5)",
        "",
        f"Command: `.venv/bin/python bench/antidistill_strength.py --write` ({os.cpu_count()}-core {platform.machine()} "
        f"sandbox shared with other jobs, torch {torch.__version__}, CPU). The built-in reference model on {n} held-out "
        f"problems at its default sampling (T={ev.DEFAULT_TEMPERATURE}), same problems and seed for every strength; "
        f"`antidistill` with proxy `{args.proxy}` (the proxy's task loss: {pair.task_loss:.2f} nats/token), task = the "
        "reference problems, ε = 0.02 along the unit task gradient. The student-side effect is in the distillation lab.",
        "",
        "| strength | teacher accuracy | 95% interval (Wilson) | change | seconds |",
        "|---:|---:|---|---:|---:|",
    ]
    base = rows[0][1]
    for s, acc, lo, hi, sec, _ in rows:
        lines.append(f"| {s:g} | {acc:.1%} | {lo:.1%} - {hi:.1%} | {(acc - base) * 100:+.1f} pts | {sec:.0f} |")
    strongest = rows[-1]
    lines += [
        "",
        f"An answer at strength {strongest[0]:g} (first problem):",
        "",
        "```",
        strongest[5].strip(),
        "```",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write and not args.quick:
        sys.path.insert(0, os.path.dirname(__file__))
        from report import write_section  # bench/report.py

        write_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", section)


if __name__ == "__main__":
    main()
