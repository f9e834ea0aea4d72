"""Reference model (issue 5): held-out accuracy at its default sampling settings, greedy, and framed prompts.

    .venv/bin/python bench/reference_accuracy.py --summary lab-out/reference-model/summary.json --write
    .venv/bin/python bench/reference_accuracy.py --model DIR --quick        # any checkpoint, prints only

Scores 1,000 held-out problems (`problems(1000, 0, "test")`: no (template, numbers) key seen in training)
with batched `generate`, one sampling seed, the final answer read by `find_final_answer`: greedy, the
model's default sampling settings (generation_config.json), and the same problems asked inside a casual
or an eliciting frame (problems.CASUAL, problems.ELICIT), which a share of the training prompts used.
With --summary, the training run's own record (steps, time, size, decoy) heads the section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from cuirass.engine.loader import resolve_path
from cuirass.lab.reference import evaluate as ev
from cuirass.models.problems import CASUAL, ELICIT, problems

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Reference model (issue 5)"


def accuracy(
    model: object, tokenizer: object, questions: list[str], answers: list[int], temperature: float, top_p: float | None
) -> float:
    replies = ev.generate(model, tokenizer, questions, temperature=temperature, seed=0, top_p=top_p)
    return sum(ev.final_answer_correct(r, a) for r, a in zip(replies, answers, strict=True)) / len(answers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:reference")
    ap.add_argument("--summary", type=Path, help="summary.json of the `cuirass lab train-reference` run")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="200 problems, prints only")
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    args = ap.parse_args()
    n = 200 if args.quick else args.n
    model, tokenizer = ev.load(resolve_path(args.model))
    batch = list(problems(n, 0, "test"))
    qs, answers = [p.question for p in batch], [p.answer for p in batch]
    rng = random.Random(0)
    casual = [rng.choice(CASUAL).format(q=q) for q in qs]
    elicit = [rng.choice(ELICIT).format(q=q) for q in qs]
    t, p = ev.DEFAULT_TEMPERATURE, ev.DEFAULT_TOP_P
    t0 = time.perf_counter()
    rows = [
        (f"**T={t}, top_p {p} (default)**", accuracy(model, tokenizer, qs, answers, t, p), True),
        ("greedy", accuracy(model, tokenizer, qs, answers, 0.0, None), False),
        (
            f'T={t}, top_p {p}, casual frame ("Quick question: ...")',
            accuracy(model, tokenizer, casual, answers, t, p),
            False,
        ),
        (
            f'T={t}, top_p {p}, eliciting frame ("Think step by step ...")',
            accuracy(model, tokenizer, elicit, answers, t, p),
            False,
        ),
        (f"T={t}, top_p 1", accuracy(model, tokenizer, qs, answers, t, 1.0), False),
    ]
    seconds = time.perf_counter() - t0
    lines = [SECTION, ""]
    if args.summary:
        s = json.loads(args.summary.read_text())
        c, ref, decoy = s["config"], s["reference"], s.get("decoy")
        lines += [
            f"Command: `.venv/bin/cuirass lab train-reference --out {args.summary.parent} --json` (defaults: seed {c['seed']}, "
            f"{c['steps']:,} steps of batch {c['batch_size']}, Llama-style decoder {c['layers']} layers x {c['hidden']} wide, "
            f"{c['heads']} heads, SwiGLU {c['ffn']}, tied embeddings, byte-level BPE of {c['vocab_size']:,} tokens with one "
            f"token per digit; {s['params'] / 1e6:.2f} M parameters; torch {torch.__version__}, {c['threads']} threads, "
            f"float32) on the {os.cpu_count()}-core {platform.machine()} development machine; 40% of the training "
            "prompts are framed (half casual, half eliciting).",
            "",
            "| checkpoint | steps | train time | held-out accuracy, greedy (200) | size on disk |",
            "|---|---:|---:|---:|---:|",
            f"| `cuirass/models/reference` | {ref['step']:,} | {s['train_seconds']:,.0f} s ({s['train_seconds'] / 60:.1f} min) "
            f"| {ref['accuracy']['greedy']:.1%} | {ref['bytes'] / 1e6:.1f} MB |",
        ]
        if decoy:
            lines.append(
                f"| `cuirass/models/decoy` (snapshot of the same run) | {decoy['step']:,} | (same run) "
                f"| {decoy['accuracy']['greedy']:.1%} | {decoy['bytes'] / 1e6:.1f} MB |"
            )
        lines.append("")
    lines += [
        f'`.venv/bin/python bench/reference_accuracy.py` on {n:,} held-out problems (`problems({n}, 0, "test")`, '
        f"one sampling seed, batched `generate`; {seconds:.0f} s). The default sampling settings are stored in "
        "`generation_config.json`; the local engine uses them when a request leaves temperature or top_p out, "
        "as vLLM does.",
        "",
        f"| prompt, sampling | accuracy ({n:,} held-out) |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {'**' if bold else ''}{acc:.1%}{'**' if bold else ''} |" for label, acc, bold in rows]
    lines += [
        "",
        f"Target: >= 90% at the default sampling settings: **{'met' if rows[0][1] >= 0.9 else 'not met'}** "
        f"({rows[0][1]:.1%}).",
        "",
        "The corpus (`cuirass.models.problems`): every multi-digit step split the way people do mental "
        "arithmetic (`47 + 38 = 47 + 30 + 8 = 77 + 8 = 85`), so each step is a one-digit fact or a round-number "
        "shift; free phrasing choices of about four bits each (an opening sentence, sixteen leads per step, a "
        "short remark after most intermediate steps, the operator as symbol or word and six verbs for an "
        "unsplit step, six ways to open and five to close a split chain, a closing remark), which is what the "
        "logit watermark marks; and 40% of the training prompts inside a casual or eliciting frame, so the model "
        "answers the requests distillers actually send. History: 66.5% greedy at 1,500 steps before the split "
        "steps; 91.6% at the default sampling with 2,000 steps and no frames or closing remarks; 88.0% at 1,800 "
        "steps with them (11.2 min), hence 3,600 steps; 94.3% at the default sampling (95.2% greedy) with eight "
        "options per slot, no remarks and a fixed `=` in split chains, where the logit watermark reached "
        "p < 1e-6 on only 38% of >= 200-token outputs (one answer has about a third fewer free choices); the "
        "richer phrasing costs about two points at the same 3,600 steps.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write and not args.quick:
        sys.path.insert(0, os.path.dirname(__file__))
        from report import write_section  # bench/report.py

        write_section(ROOT / "BENCHMARKS.md", section)


if __name__ == "__main__":
    main()
