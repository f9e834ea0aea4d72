"""Logit watermark quality (issue 5 acceptance): detection, null calibration, cost in accuracy.

    .venv/bin/python bench/logit_watermark_quality.py                 # the built-in reference model
    .venv/bin/python bench/logit_watermark_quality.py --quick         # small run, prints only
    .venv/bin/python bench/logit_watermark_quality.py --model DIR     # any local HF model

Generation is batched through transformers' `generate` with the very processor the engine runs
(`GreenListProcessor`), at the reference model's default sampling settings. Reports: p-values of
watermarked answers (per answer, by length, and per corpus of answers, windows counted once), the
null (unwatermarked answers under the key: KS test of the randomized p-value, smallest p), and,
with the reference problems, final-answer accuracy with and without the watermark.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kstest  # noqa: E402
from transformers import LogitsProcessorList  # noqa: E402

from cuirass.engine.loader import load_model  # noqa: E402
from cuirass.respond.logit.detect import detect_corpus, detect_tokens  # noqa: E402
from cuirass.respond.logit.keyed import CONTEXT, DELTA, GAMMA  # noqa: E402
from cuirass.respond.logit.watermark import GreenListProcessor  # noqa: E402

KEY = bytes(range(32))


def batched(lm: Any, prompts: list[str], processor: Any, temperature: float, max_new: int,
            seed: int, batch: int = 64) -> list[list[int]]:
    """Generated token ids per prompt (up to the first eos), chat template applied."""
    tok = lm.tokenizer
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(seed)
    out: list[list[int]] = []
    for s in range(0, len(prompts), batch):
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
                 for p in prompts[s:s + batch]]
        enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(lm.device)
        procs = LogitsProcessorList([processor] if processor is not None else [])
        gen = lm.model.generate(**enc, max_new_tokens=max_new, do_sample=temperature > 0, temperature=temperature or None,
                                top_p=1.0, top_k=0, logits_processor=procs, pad_token_id=tok.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:].tolist():
            ids = []
            for t in row:
                if t in lm.eos_ids:
                    break
                ids.append(t)
            out.append(ids)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="builtin:reference")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=1000, help="answers per setting")
    ap.add_argument("--gamma", type=float, default=GAMMA)
    ap.add_argument("--delta", type=float, default=DELTA)
    ap.add_argument("--context", type=int, default=CONTEXT)
    args = ap.parse_args()
    n = 60 if args.quick else args.n
    lm = load_model(args.model)
    try:
        from cuirass.lab.reference.evaluate import DEFAULT_TEMPERATURE, MAX_NEW_TOKENS, final_answer_correct
        from cuirass.lab.reference.problems import problems
        probs = list(problems(n, 0, "test"))
        prompts = [p.question for p in probs]
        temperature, max_new = DEFAULT_TEMPERATURE, MAX_NEW_TOKENS
    except ImportError:
        probs, prompts, temperature, max_new = [], [f"question {i}" for i in range(n)], 1.0, 200
    wm = GreenListProcessor(KEY, args.gamma, args.delta, args.context)
    t = time.time()
    marked = batched(lm, prompts, wm, temperature, max_new, seed=1)
    clean = batched(lm, prompts, None, temperature, max_new, seed=2)
    print(f"generated {2 * n} answers in {time.time() - t:.0f} s", file=sys.stderr)
    det = [detect_tokens(ids, KEY, args.gamma, args.context) for ids in marked]
    null = [detect_tokens(ids, KEY, args.gamma, args.context) for ids in clean]
    lengths = np.array([len(ids) for ids in marked])
    p = np.array([r.p_value for r in det])
    print(f"model {lm.name}, gamma {args.gamma}, delta {args.delta}, context {args.context}, {n} answers each")
    print(f"watermarked answers: median {np.median(lengths):.0f} tokens, median p {np.median(p):.2e}, "
          f"p < 1e-6 in {np.mean(p < 1e-6):.0%}")
    for lo, hi in ((0, 100), (100, 200), (200, 10**9)):
        sel = (lengths >= lo) & (lengths < hi)
        if sel.any():
            print(f"  {lo}-{hi} tokens: {sel.sum()} answers, p < 1e-6 in {np.mean(p[sel] < 1e-6):.0%}")
    for k in (2, 4, 8):
        groups = [marked[i:i + k] for i in range(0, len(marked) - k + 1, k)]
        ps = [detect_corpus(g, KEY, args.gamma, args.context).p_value for g in groups]
        print(f"  corpora of {k} answers: p < 1e-6 in {np.mean(np.array(ps) < 1e-6):.0%} of {len(groups)}")
    pn = np.array([r.p_value for r in null])
    ks = kstest([r.p_randomized for r in null], "uniform")
    print(f"unwatermarked under the key: KS p = {ks.pvalue:.3f}, min p = {pn.min():.2e}, "
          f"below 1e-4: {int((pn < 1e-4).sum())}")
    if probs:
        dec = lambda ids: lm.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        acc_m = np.mean([final_answer_correct(dec(ids), q.answer) for ids, q in zip(marked, probs, strict=True)])
        acc_c = np.mean([final_answer_correct(dec(ids), q.answer) for ids, q in zip(clean, probs, strict=True)])
        print(f"accuracy: {acc_c:.1%} unwatermarked, {acc_m:.1%} watermarked ({(acc_m - acc_c) * 100:+.1f} points)")


if __name__ == "__main__":
    main()
