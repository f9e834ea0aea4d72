"""How long, and how large, the distillation lab's student must be before a value ratio means something (issue 20).

    .venv/bin/python bench/student_budget.py                          # 1,000 and 2,000 steps, 500 held-out
    .venv/bin/python bench/student_budget.py --steps 2000 --eval-n 1000
    .venv/bin/python bench/student_budget.py --steps 2000 --only A --student 96 3 4 384   # the earlier size

Offline, without gateways: the teacher and the decoy answer the lab campaign's 2,000 problems (bare
questions, the lab's reply length, default sampling, one seed per batch), and a student of the full
configuration's size (`DistillConfig().student`, or `--student`; trained with `cuirass.lab.distill.student`)
learns from each of these data sets:

- `A`: the teacher's replies, trace and answer (what condition A harvests);
- `A answers`: the same replies without their traces;
- `decoy`: the decoy's replies, trace and answer;
- `B-like`: the teacher's traced replies until the campaign is flagged (`--flagged-at`, the share of its
  requests), then the teacher's answers alone (stripped) until it is grouped as a campaign (`--grouped-at`),
  then the decoy's answers alone; `D-like` is the same, keeping only right answers (the filtering attacker);
- `B-like, decoy once flagged` and `D-like, decoy once flagged`: the decoy from the flag on.

The B- and D-like sets stand in for the harvests of a lab run with the given timeline; they are not the lab's
conditions, which go through the real gateways (`cuirass lab distill`). Value ratio = accuracy / A's accuracy at
the same number of steps (the untrained student scores 0). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cuirass.engine.loader import resolve_path
from cuirass.engine.reasoning import split
from cuirass.lab.distill import student, workload
from cuirass.lab.distill.config import DistillConfig, StudentSpec
from cuirass.lab.reference import evaluate as ev


def _answer(reply: str) -> str:
    """A reply without its `<think>` block: the content the gateway's reasoning parser sends."""
    return split(reply)[1]


def data_sets(
    problems: list, teacher: list[str], decoy: list[str], flagged_at: float, grouped_at: float
) -> dict[str, list[student.Example]]:
    n = len(problems)

    def timeline(flag: float, group: float, keep: Callable[[str, object], bool]) -> list[student.Example]:
        out = []
        for i, p in enumerate(problems):
            text = teacher[i] if i < flag * n else _answer(teacher[i]) if i < group * n else _answer(decoy[i])
            if keep(text, p):
                out.append(student.Example(p.question, text))
        return out

    def every(text: str, p: object) -> bool:
        return True

    def right(text: str, p: object) -> bool:
        return ev.final_answer_correct(text, p.answer)  # type: ignore[attr-defined]

    return {
        "A": [student.Example(p.question, r) for p, r in zip(problems, teacher, strict=True)],
        "A answers": [student.Example(p.question, _answer(r)) for p, r in zip(problems, teacher, strict=True)],
        "decoy": [student.Example(p.question, r) for p, r in zip(problems, decoy, strict=True)],
        "B-like": timeline(flagged_at, grouped_at, every),
        "D-like": timeline(flagged_at, grouped_at, right),
        "B-like, decoy once flagged": timeline(flagged_at, flagged_at, every),
        "D-like, decoy once flagged": timeline(flagged_at, flagged_at, right),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--eval-n", type=int, default=500)
    ap.add_argument("--flagged-at", type=float, default=0.11, help="share of requests served before the flag")
    ap.add_argument("--grouped-at", type=float, default=0.67, help="share served before the campaign band")
    ap.add_argument("--only", nargs="*", help="data sets to train on (default: all; A always, the ratios need it)")
    spec = DistillConfig().student
    ap.add_argument(
        "--student",
        nargs=4,
        type=int,
        metavar=("HIDDEN", "LAYERS", "HEADS", "FFN"),
        default=[spec.hidden, spec.layers, spec.heads, spec.ffn],
        help="the student's size (default: the full configuration's)",
    )
    args = ap.parse_args()

    hidden, layers, heads, ffn = args.student
    base = DistillConfig(student=StudentSpec(hidden=hidden, layers=layers, heads=heads, ffn=ffn))
    problems = [r.problem for r in workload.campaign(base, stealth=False, prefix="budget")]
    replies, tokenizers = {}, {}
    for name, model in (("teacher", base.teacher), ("decoy", base.decoy)):
        t0 = time.perf_counter()
        m, tok = ev.load(resolve_path(model))
        tok.padding_side = "left"
        tokenizers[name] = tok
        replies[name] = ev.generate(
            m, tok, [p.question for p in problems], seed=base.seed + 1, max_new_tokens=base.max_tokens
        )
        right = sum(ev.final_answer_correct(r, p.answer) for r, p in zip(replies[name], problems, strict=True))
        print(
            f"{name}: {right / len(problems):.1%} of {len(problems)} replies right ({time.perf_counter() - t0:.0f} s)"
        )
    sets = data_sets(problems, replies["teacher"], replies["decoy"], args.flagged_at, args.grouped_at)
    tokenizer = tokenizers["teacher"]  # the student's, as in the lab (training pads on its own, to the right)

    print(
        f"\nstudent {hidden} wide, {layers} layers, {heads} heads, ffn {ffn}; flagged at {args.flagged_at:.0%}, "
        f"grouped at {args.grouped_at:.0%}; {args.eval_n} held-out problems\n"
    )
    print("| data | examples | steps | accuracy (95% CI) | value ratio | held-out loss | seconds |")
    print("|---|---|---|---|---|---|---|")
    for steps in args.steps:
        config = dataclasses.replace(base, train_steps=steps, eval_n=args.eval_n)
        a_acc = None
        for name, data in sets.items():
            if args.only and name not in args.only and name != "A":
                continue
            t0 = time.perf_counter()
            scored = student.evaluate(student.train(data, tokenizer, config), tokenizer, config)
            acc = scored["accuracy"]
            a_acc = acc if name == "A" else a_acc
            low, high = scored["ci95"]
            ratio = f"{acc / a_acc:.2f}" if a_acc else "-"
            print(
                f"| {name} | {len(data)} | {steps} | {acc:.1%} ({low:.1%}-{high:.1%}) | {ratio} | "
                f"{scored['heldout_loss']:.3f} | {time.perf_counter() - t0:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
