"""Does a distilled student learn the answer signature, and how many black-box probes implicate it (issue 21)?

    .venv/bin/python bench/signature_radioactivity.py --harvest lab-out/distill/harvest.jsonl

Takes condition A's harvest of a distillation-lab run (what the bare teacher sent the campaign: prompt, trace,
answer, account) and signs the answers as the gateway's `signature` defense would for flagged accounts
(`cuirass.marks.signature`), in two regimes: the whole campaign in one honeypot cohort (a campaign the
detector grouped) and its accounts spread over four (flagged one by one). Students of the lab's size
(3x96, 1,000 steps) are trained on what the attacker would keep:

- answers only, signed (the default policy strips the traces of flagged accounts), one cohort and four;
- answers only, unsigned: the control;
- with `--traces`, traces + signed answers, one cohort (a policy that signs without stripping).

Each student then answers held-out problems at the API's default sampling (T=0.7, top_p 0.9), and the exact
signature test (`marks.signature.score`) is run with the cohorts' keys on the first N answers, N from 25 to
`--probes`: Holm-corrected over the four honeypot keys, as an audit that does not know the cohort would.
The false-accusation side: every student against 20 keys that signed nothing (KS test of those p-values
against uniform), and the control against the four keys. Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from scipy import stats

from cuirass.engine.loader import resolve_path
from cuirass.lab.distill import student
from cuirass.lab.distill.config import DistillConfig
from cuirass.lab.distill.harvest import with_trace
from cuirass.lab.reference import evaluate as ev
from cuirass.marks import signature
from cuirass.prove.correction import holm

HONEYPOTS = 4
COUNTS = (25, 50, 100, 200, 400, 600, 1000)


def key(name: str) -> bytes:
    return hashlib.blake2b(f"bench-signature:{name}".encode(), digest_size=32).digest()


def cohort_of(account: str, spread: bool) -> str:
    if not spread:
        return "h000"
    return f"h{int(hashlib.sha256(account.encode()).hexdigest(), 16) % HONEYPOTS:03d}"


def training_set(rows: list[dict[str, Any]], signed: bool, spread: bool, traces: bool) -> list[student.Example]:
    out = []
    for r in rows:
        answer = r["reply"]
        if signed:
            answer = signature.embed(answer, r["prompt"], key(cohort_of(r["account"], spread)))
        out.append(student.Example(r["prompt"], with_trace(r["reasoning"], answer) if traces else answer))
    return out


def audit(replies: list[str], probes: list[str], n: int, keys: dict[str, bytes]) -> dict[str, Any]:
    by_window = signature.counts(zip(probes[:n], replies[:n]))
    null = signature.null_distribution(by_window.values())
    scores = {name: signature.score(by_window, k, dist=null) for name, k in keys.items()}
    return {
        "n": n,
        "read": sum(int(c.sum()) for c in by_window.values()),
        "windows": len(by_window),
        "p": {name: s.p_value for name, s in scores.items()},
        "hits": {name: s.hits for name, s in scores.items()},
    }


def lead_scores(model: Any, tokenizer: Any, probes: list[str], replies: list[str]) -> list[np.ndarray | None]:
    """White-box: per probe, the student's log-probability of each lead-in where its own reply opens the
    final-answer sentence (`audit weights`' likelihood scorer); None where the reply has no such sentence."""
    from cuirass.prove.weights import WeightsSuspect

    scorer = WeightsSuspect(model, tokenizer, progress=False)
    return [scorer.lead_scores(p, r) for p, r in zip(probes, replies)]


def rank_audit(scores: list[np.ndarray | None], probes: list[str], n: int, keys: dict[str, bytes]) -> dict[str, Any]:
    by_window: dict[str, np.ndarray] = {}
    for s, prompt in zip(scores[:n], probes[:n]):
        if s is not None:
            w = signature.window(prompt)
            by_window[w] = by_window.get(w, np.zeros(signature.K)) + s
    p = {name: signature.rank_test(by_window, k)[1] for name, k in keys.items()}
    return {"n": n, "windows": len(by_window), "p": p, "holm_min": min(holm(list(p.values())))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--harvest", type=Path, default=Path("lab-out/distill/harvest.jsonl"))
    ap.add_argument("--teacher", default="builtin:reference", help="the tokenizer's model")
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=None, help="student training steps (default: the full lab's)")
    ap.add_argument("--out", type=Path, default=Path("lab-out/signature.json"))
    ap.add_argument("--traces", action="store_true", help="also a student on traces + signed answers")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = [json.loads(x) for x in args.harvest.read_text().splitlines()]
    rows = [r for r in rows if r["condition"] == "A" and r["role"] != "benign" and r["reply"] and r["reasoning"]]
    config = DistillConfig.full()
    if args.steps:
        config = dataclasses.replace(config, train_steps=args.steps)
    config = dataclasses.replace(config, eval_n=args.probes)
    _, tokenizer = ev.load(resolve_path(args.teacher))
    signed_share = sum(signature.read(r["reply"]) is not None for r in rows) / len(rows)
    probes = [p.question for p in student.eval_problems(config)]
    honeypots = {f"h{i:03d}": key(f"h{i:03d}") for i in range(HONEYPOTS)}
    unused = {f"unused{i:02d}": key(f"unused{i:02d}") for i in range(20)}
    students = {
        "answers only, signed, one cohort": (True, False, False),
        "answers only, signed, four cohorts": (True, True, False),
        "control: answers only, unsigned": (False, False, False),
    }
    if args.traces:
        students["traces + signed answers, one cohort"] = (True, False, True)
    results: dict[str, Any] = {"harvest": str(args.harvest), "examples": len(rows), "signable": signed_share}
    for name, (signed, spread, traces) in students.items():
        s0 = time.perf_counter()
        data = training_set(rows, signed, spread, traces)
        model = student.train(data, tokenizer, config, progress=True, desc=name)
        tokenizer.padding_side = "left"
        replies = ev.generate(model, tokenizer, probes, seed=1, max_new_tokens=config.max_tokens)
        right = sum(ev.final_answer_correct(r, p.answer) for r, p in zip(replies, student.eval_problems(config)))
        curve = [audit(replies, probes, n, honeypots) for n in COUNTS if n <= len(probes)]
        for point in curve:
            point["holm_min"] = min(holm(list(point["p"].values())))
        white = lead_scores(model, tokenizer, probes[:200], replies[:200])
        weights = [rank_audit(white, probes, n, honeypots) for n in (10, 25, 50, 100, 200) if n <= len(probes)]
        nulls = audit(replies, probes, len(probes), unused)["p"]
        results[name] = {
            "accuracy": right / len(probes),
            "curve": curve,
            "weights_curve": weights,
            "weights_unused_keys_p": rank_audit(white, probes, 200, unused)["p"],
            "unused_keys_p": nulls,
            "unused_keys_ks_p": float(stats.kstest(list(nulls.values()), "uniform").pvalue),
            "seconds": time.perf_counter() - s0,
        }
        print(f"{name}: accuracy {right / len(probes):.1%}; min Holm p by probes:", flush=True)
        print("  " + ", ".join(f"{c['n']}: {c['holm_min']:.2g}" for c in curve), flush=True)
        print("  weights: " + ", ".join(f"{c['n']}: {c['holm_min']:.2g}" for c in weights), flush=True)
    results["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _markdown(results)


def _markdown(r: dict[str, Any]) -> None:
    names = [k for k, v in r.items() if isinstance(v, dict) and "curve" in v]
    counts = [c["n"] for c in r[names[0]]["curve"]]
    print(f"\n{r['examples']} harvested answers, {r['signable']:.0%} signable; {r['seconds'] / 60:.1f} min\n")
    print("| student | accuracy | " + " | ".join(f"{n} probes" for n in counts) + " | 20 unused keys: min p, KS p |")
    print("|---|---:|" + "---:|" * len(counts) + "---|")
    for name in names:
        s = r[name]
        ps = " | ".join(f"{c['holm_min']:.1e}" for c in s["curve"])
        print(
            f"| {name} | {s['accuracy']:.1%} | {ps} | {min(s['unused_keys_p'].values()):.2g}, {s['unused_keys_ks_p']:.2f} |"
        )
    wcounts = [c["n"] for c in r[names[0]]["weights_curve"]]
    print("\nWith the weights (the student's likelihood of each lead-in at its own final-answer sentence):\n")
    print("| student | " + " | ".join(f"{n} probes" for n in wcounts) + " | 20 unused keys: min p |")
    print("|---|" + "---:|" * len(wcounts) + "---:|")
    for name in names:
        s = r[name]
        ps = " | ".join(f"{c['holm_min']:.1e}" for c in s["weights_curve"])
        print(f"| {name} | {ps} | {min(s['weights_unused_keys_p'].values()):.2g} |")


if __name__ == "__main__":
    main()
