"""Reference model (issue 20): accuracy on the three held-out sets, and what it says to everyday input.

    .venv/bin/python bench/reference_reasoning.py                      # the shipped model, 1,000 per set
    .venv/bin/python bench/reference_reasoning.py --model DIR --n 200  # any checkpoint

Sets (cuirass.lab.reference.evaluate.SETS), all with numbers held out of training: `own`, the generator's
phrasing (problems.py); `everyday`, questions written the way people type them (everyday.py) in phrasings used
in training; `everyday-unseen`, phrasings never used in training or tuning. Then the share of sensible replies
to non-math inputs in held-out phrasings, and the replies to a fixed list of everyday inputs (the issue's own).
Default sampling settings (T=0.7, top_p 0.9), one seed; prints a Markdown section.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cuirass.engine.loader import resolve_path
from cuirass.engine.reasoning import split
from cuirass.lab.reference import evaluate as ev

ASKED = [
    "Tom has 17 apples. He buys 25 more and then gives 9 to his sister. How many apples does Tom have now?",
    "What is 15 + 27?",
    "15+27=?",
    "what's 7 times 8",
    "If a pen costs 3 dollars, how much do 6 pens cost?",
    "hello, who are you?",
    "what can you do?",
    "What is the capital of France?",
    "tell me a joke",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:reference")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    model, tokenizer = ev.load(resolve_path(args.model))
    started = time.perf_counter()
    rows = [(name, ev.score(model, tokenizer, args.n, 0, questions=name).accuracy) for name in ev.SETS]
    greedy = ev.score(model, tokenizer, args.n, 0, temperature=0.0).accuracy
    chat = ev.score_off_topic(model, tokenizer, 100, 0)
    replies = ev.generate(model, tokenizer, ASKED, temperature=ev.DEFAULT_TEMPERATURE, seed=0)
    seconds = time.perf_counter() - started
    print(f"model {args.model}; {args.n} held-out problems per set; {seconds:.0f} s\n")
    print("| held-out set | accuracy, T=0.7 top_p 0.9 |\n|---|---:|")
    for name, acc in rows:
        print(f"| {name} | {acc:.1%} |")
    print(f"| own, greedy | {greedy:.1%} |")
    print(f"| non-math input in held-out phrasings (100): sensible reply | {chat.accuracy:.1%} |\n")
    print("| asked | reasoning_content | content |\n|---|---|---|")
    for q, text in zip(ASKED, replies, strict=True):
        reasoning, content = split(text)
        shown = "" if reasoning is None else reasoning.strip().replace("\n", " / ")
        print(f"| {q} | {shown} | {content.strip()} |")


if __name__ == "__main__":
    main()
