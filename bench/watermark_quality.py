"""Text watermark quality on real model text: the assistant turns of ShareGPT (issue 4 acceptance).

    .venv/bin/python bench/watermark_quality.py            # full run, writes BENCHMARKS.md section
    .venv/bin/python bench/watermark_quality.py --quick    # small smoke run, no BENCHMARKS.md

Measured on a held-out half of the conversations (split by a hash of the conversation id; the
lexicon was tuned on the other half). Reports: p-value and detection rate (p < 1e-6) by response
length; uniformity of p-values on unwatermarked text (KS test) and their minimum; another cohort's
key on watermarked text (should look null); robustness to reverting a share of the substitutions
(a light paraphrase); the optional invisible channel; speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kstest

from cuirass.keyring import Keyring
from cuirass.lab.traffic.sources import sharegpt
from cuirass.marks.text import ALL_GROUPS, Finder, detect, detect_many, embed, merge, score, units
from cuirass.marks.text.embed import revert
from cuirass.marks.text.segment import WORD, tokenize

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Text watermark (issue 4)"
BINS = ((50, 100), (100, 200), (200, 300), (300, 400), (400, 500), (500, 10**9))
THRESHOLD = 1e-6


STOP_SHARE = 0.01
STOP_MODULE = ROOT / "src" / "cuirass" / "respond" / "watermark" / "stopwindows.py"


def held_out(conv_id: str) -> bool:
    """The measurement half (the lexicon and the stop windows come from the other half)."""
    return hashlib.sha256(b"cuirass-watermark-split:" + conv_id.encode()).digest()[0] >= 128


def responses(measure: bool = True) -> list[tuple[str, str]]:
    benign, decoy = sharegpt()
    return [(c.id, a) for c in benign + decoy if held_out(c.id) == measure for _, a in c.turns if a.strip()]


def build_stopwindows() -> int:
    """Write stopwindows.py: windows in >= STOP_SHARE of the tuning half's assistant turns."""
    texts = [t for _, t in responses(measure=False)]
    df: Counter[str] = Counter()
    for t in texts:
        df.update({u[0] for u in units(t, stop=frozenset())})
    common = sorted(w for w, c in df.items() if c >= STOP_SHARE * len(texts))
    head, _, _ = STOP_MODULE.read_text().partition("STOP_WINDOWS")
    body = "".join(f"    {w!r},\n" for w in common)
    STOP_MODULE.write_text(f"{head}STOP_WINDOWS: frozenset[str] = frozenset({{\n{body}}})\n")
    return len(common)


def prose_words(text: str) -> int:
    return sum(t.kind == WORD for t in tokenize(text))


def label(lo: int, hi: int) -> str:
    return f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+"


def rate(ps: list[float]) -> float:
    return float(np.mean(np.array(ps) < THRESHOLD)) if ps else float("nan")


def run(per_bin: int, n_clean: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    ring = Keyring(b"bench-master-secret-0123456789", n_cohorts=16)
    keys = [ring.key("watermark", f"c{i:03d}") for i in range(16)]
    pool = responses()
    rng.shuffle(pool)
    out: dict[str, Any] = {"held_out_responses": len(pool), "per_bin": per_bin, "seed": seed}

    # 1. watermarked responses, by length
    by_bin: dict[str, list[dict[str, Any]]] = {label(*b): [] for b in BINS}
    for i, (_, text) in enumerate(pool):
        n = len(text.split())
        for lo, hi in BINS:
            rows = by_bin[label(lo, hi)]
            if lo <= n < hi and len(rows) < per_bin:
                key = keys[i % 16]
                marked = embed(text, key)
                r = detect(marked, key)
                rows.append(
                    {
                        "text": text,
                        "marked": marked,
                        "key": i % 16,
                        "words": n,
                        "prose": prose_words(text),
                        "n": r.n_scored,
                        "green": r.n_green,
                        "p": r.p_value,
                        "bits": min(r.bits, 1000.0),
                    }
                )
        if all(len(v) >= per_bin for v in by_bin.values()):
            break
    table = []
    for name, rows in by_bin.items():
        ps = [r["p"] for r in rows]
        table.append(
            {
                "words": name,
                "count": len(rows),
                "median_units": float(np.median([r["n"] for r in rows])),
                "median_bits": float(np.median([r["bits"] for r in rows])),
                "green_share": sum(r["green"] for r in rows) / max(1, sum(r["n"] for r in rows)),
                "median_p": float(np.median(ps)),
                "detected": rate(ps),
            }
        )
    out["by_length"] = table
    long_rows = [r for name, rows in by_bin.items() for r in rows if r["words"] >= 300]
    out["acceptance_300_words"] = {"count": len(long_rows), "detected": rate([r["p"] for r in long_rows])}
    prose_table = []
    for lo, hi in ((300, 400), (400, 500), (500, 10**9)):
        rows = [r for rs in by_bin.values() for r in rs if lo <= r["prose"] < hi]
        prose_table.append(
            {
                "prose_words": label(lo, hi),
                "count": len(rows),
                "detected": rate([r["p"] for r in rows]),
                "median_units": float(np.median([r["n"] for r in rows])) if rows else float("nan"),
            }
        )
    out["by_prose_length"] = prose_table
    out["prose_limit"] = prose_limit(long_rows)
    out["words_for_90pct"] = _length_for(by_bin)

    # 1b. pooling k answers of one cohort (what an audit does): windows merged, each counted once
    pooled = []
    for name, rows in (("100-299", by_bin["100-199"] + by_bin["200-299"]), (">= 300", long_rows)):
        for k in (2, 3):
            groups: dict[int, list[str]] = {}
            for r in rows:
                groups.setdefault(r["key"], []).append(r["marked"])
            ps = [
                score(merge(units(m) for m in g[j : j + k]), keys[key]).p_value
                for key, g in groups.items()
                for j in range(0, len(g) - k + 1, k)
            ]
            pooled.append({"words": name, "answers": k, "groups": len(ps), "detected": rate(ps)})
    out["pooled"] = pooled

    # 2. unwatermarked responses: p-values must be uniform, none tiny
    clean = [t for _, t in pool[-n_clean:]]
    fixed = [detect(t, keys[0]) for t in clean]
    fresh = [detect(t, hashlib.sha256(b"fresh-key-%d" % i).digest()) for i, t in enumerate(clean)]
    out["clean"] = {
        "count": len(clean),
        "ks_randomized_fixed_key": _ks([r.p_randomized for r in fixed]),
        "ks_randomized_fresh_keys": _ks([r.p_randomized for r in fresh]),
        "ks_plain_fixed_key": _ks([r.p_value for r in fixed]),
        "min_p": min(r.p_value for r in fixed + fresh),
        "below_1e-4": sum(r.p_value < 1e-4 for r in fixed + fresh),
        "no_units": sum(r.n_scored == 0 for r in fixed),
        "mean_units": float(np.mean([r.n_scored for r in fixed])),
    }

    # 3. another cohort's key on watermarked text: must look null
    wrong = [detect(r["marked"], keys[(r["key"] + 1) % 16]) for r in long_rows]
    fresh_wrong = [detect(r["marked"], hashlib.sha256(b"wrong-%d" % i).digest()) for i, r in enumerate(long_rows)]
    out["wrong_key"] = {
        "count": len(wrong),
        "ks_randomized": _ks([r.p_randomized for r in wrong]),
        "ks_randomized_fresh": _ks([r.p_randomized for r in fresh_wrong]),
        "min_p": min(r.p_value for r in wrong + fresh_wrong),
        "detected": rate([r.p_value for r in wrong + fresh_wrong]),
    }

    # 4. light paraphrase: a share of the substitutions reverted
    robust = []
    for share in (0.1, 0.25, 0.5):
        ps, greens, ns = [], 0, 0
        for j, r in enumerate(long_rows):
            reverted = revert(r["text"], r["marked"], share, b"paraphrase-%d" % j)
            d = detect(reverted, keys[r["key"]])
            ps.append(d.p_value)
            greens, ns = greens + d.n_green, ns + d.n_scored
        robust.append(
            {
                "reverted": share,
                "detected": rate(ps),
                "green_share": greens / max(1, ns),
                "median_p": float(np.median(ps)),
            }
        )
    out["paraphrase"] = robust

    # 5. optional invisible channel (off by default)
    both = Finder(groups=ALL_GROUPS)
    inv = [detect(embed(r["text"], keys[r["key"]], finder=both), keys[r["key"]], finder=both) for r in long_rows]
    out["with_invisible"] = {
        "detected": rate([r.p_value for r in inv]),
        "median_units": float(np.median([r.n_scored for r in inv])),
    }

    # 6. speed: CPU time of this process (the machine is shared, so wall time would measure the neighbours)
    sample = [r["text"] for r in long_rows[:200]]
    t0 = time.process_time()
    for t in sample:
        embed(t, keys[0])
    t1 = time.process_time()
    for t in sample:
        detect(t, keys[0])
    t2 = time.process_time()
    many = [hashlib.sha256(b"k%d" % i).digest() for i in range(1000)]
    detect_many(sample[0], many)
    t3 = time.process_time()
    out["speed"] = {
        "embed_ms": 1000 * (t1 - t0) / len(sample),
        "detect_ms": 1000 * (t2 - t1) / len(sample),
        "detect_many_1000_keys_ms": 1000 * (t3 - t2),
        "units_in_that_text": len(units(sample[0])),
    }
    out["_rows"] = [(r["words"], r["prose"], r["p"]) for rs in by_bin.values() for r in rs]
    return out


def prose_limit(long_rows: list[dict[str, Any]]) -> dict[str, float]:
    """What caps single-answer detection: the share of >= 300-word responses that are mostly code or tables."""
    few = [r for r in long_rows if r["prose"] < 150]
    rest = [r for r in long_rows if r["prose"] >= 150]
    per100 = [(100 * r["n"] / r["prose"], 100 * min(r["bits"], 1000.0) / r["prose"]) for r in rest]
    return {
        "share_under_150_prose": len(few) / max(1, len(long_rows)),
        "detected_under_150_prose": rate([r["p"] for r in few]),
        "detected_150_plus_prose": rate([r["p"] for r in rest]),
        "prose_p10": float(np.percentile([r["prose"] for r in long_rows], 10)) if long_rows else float("nan"),
        "units_per_100_prose": float(np.median([u for u, _ in per100])) if per100 else float("nan"),
        "bits_per_100_prose": float(np.median([b for _, b in per100])) if per100 else float("nan"),
    }


def _length_for(by_bin: dict[str, list[dict[str, Any]]]) -> str | None:
    """The shortest length bin from which on at least 90% of watermarked responses are detected."""
    names = list(by_bin)
    for k in range(len(names)):
        rows = [r for name in names[k:] for r in by_bin[name]]
        if rows and rate([r["p"] for r in rows]) >= 0.9:
            return names[k]
    return None


def _ks(ps: list[float]) -> dict[str, float]:
    res = kstest(ps, "uniform")
    return {"statistic": float(res.statistic), "p": float(res.pvalue)}


def plot(rows: list[tuple[int, int, float]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    words = np.array([r[1] for r in rows])
    ps = np.maximum(np.array([r[2] for r in rows]), 1e-30)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(words, ps, s=4, alpha=0.4)
    ax.axhline(THRESHOLD, color="red", lw=1, label="p = 1e-6")
    ax.set_yscale("log")
    ax.set_xlabel("words of prose in the response (code, URLs, quotes excluded)")
    ax.set_ylabel("p-value of the watermarked response")
    ax.set_title("Text watermark: p-value vs length (ShareGPT assistant turns, held out)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def markdown(res: dict[str, Any], command: str, png: str | None) -> str:
    c, w = res["clean"], res["wrong_key"]
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (machine: {os.cpu_count()}-core {platform.machine()} sandbox, Python "
        f"{platform.python_version()}, one process). Data: {res['held_out_responses']:,} ShareGPT assistant "
        "turns of the held-out half "
        "(split by a hash of the conversation id; the lexicon was tuned on the other half); "
        f"{res['per_bin']} responses per length bin, keys of 16 cohorts from one keyring.",
        "",
        "Watermarked responses (one unit per distinct window, green with probability 1/k under H0; p = exact "
        "Poisson-binomial tail; bits = -log2 p; detected = p < 1e-6, i.e. about 20 bits):",
        "",
        "| words | responses | median units | median bits | green share | median p | detected |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["by_length"]:
        lines.append(
            f"| {r['words']} | {r['count']} | {r['median_units']:.0f} | {r['median_bits']:.1f} | "
            f"{r['green_share']:.3f} | {r['median_p']:.1e} | {r['detected']:.0%} |"
        )
    a = res["acceptance_300_words"]
    lines += [
        "",
        f"Acceptance (>= 300 words, >= 90% detected): **{a['detected']:.0%}** of {a['count']} responses. "
        f"By words of prose (code, URLs, quotes excluded): "
        + ", ".join(
            f"{r['prose_words']}: {r['detected']:.0%} (n={r['count']}, median {r['median_units']:.0f} units)"
            for r in res["by_prose_length"]
        )
        + ". "
        f"Shortest length bin from which >= 90% are detected: {res['words_for_90pct'] or 'none'}.",
        "",
        *_limit_lines(res.get("prose_limit")),
        f"Unwatermarked responses ({c['count']}): KS test of the randomized p-value against Uniform(0,1): "
        f"D = {c['ks_randomized_fixed_key']['statistic']:.3f}, p = {c['ks_randomized_fixed_key']['p']:.2f} "
        f"(one cohort key); D = {c['ks_randomized_fresh_keys']['statistic']:.3f}, "
        f"p = {c['ks_randomized_fresh_keys']['p']:.2f} (a fresh key per response). Smallest p-value "
        f"{c['min_p']:.2g}; {c['below_1e-4']} below 1e-4. The plain (conservative) p-value is discrete, "
        f"so its KS test rejects (D = {c['ks_plain_fixed_key']['statistic']:.3f}) as expected; "
        f"{c['no_units']} responses have no choice point (p = 1); mean {c['mean_units']:.1f} units.",
        "",
        f"Wrong key on the watermarked >= 300-word responses ({w['count']}): another cohort's key, KS D = "
        f"{w['ks_randomized']['statistic']:.3f}, p = {w['ks_randomized']['p']:.2f}; a fresh random key per "
        f"response, KS D = {w['ks_randomized_fresh']['statistic']:.3f}, "
        f"p = {w['ks_randomized_fresh']['p']:.2f}; "
        f"smallest p {w['min_p']:.2g}; detected {w['detected']:.0%}. (With one fixed pair of keys, answers "
        "that share a window share its keyed draw, so single-answer p-values are exact but not independent "
        "across answers; the fresh-key column is the null of one answer.)",
        "",
        "Pooling answers of one cohort (windows merged, each counted once; what an audit does):",
        "",
        "| words per answer | answers pooled | groups | detected |",
        "|---|---|---|---|",
    ]
    for r in res["pooled"]:
        lines.append(f"| {r['words']} | {r['answers']} | {r['groups']} | {r['detected']:.0%} |")
    lines += [
        "",
        "Light paraphrase (a keyed share of the substitutions reverted), >= 300 words:",
        "",
        "| reverted | green share | median p | detected |",
        "|---|---|---|---|",
    ]
    for r in res["paraphrase"]:
        lines.append(f"| {r['reverted']:.0%} | {r['green_share']:.3f} | {r['median_p']:.1e} | {r['detected']:.0%} |")
    inv, sp = res["with_invisible"], res["speed"]
    lines += [
        "",
        f"With the optional invisible channel (U+2060 after sentence ends; off by default, stripped by "
        f"cleaners): detected {inv['detected']:.0%} of >= 300-word responses (median {inv['median_units']:.0f} "
        "units).",
        "",
        f"Speed (CPU time, one core): embed {sp['embed_ms']:.1f} ms and detect {sp['detect_ms']:.1f} ms per "
        ">= 300-word response; "
        f"detect_many with 1,000 keys {sp['detect_many_1000_keys_ms']:.0f} ms "
        f"({sp['units_in_that_text']} windows).",
    ]
    if png:
        lines += ["", f"Plot: `{png}`."]
    return "\n".join(lines) + "\n"


def _limit_lines(lim: dict[str, float] | None) -> list[str]:
    if not lim:
        return []
    return [
        f"What caps one answer: {lim['share_under_150_prose']:.0%} of the >= 300-word responses have fewer than "
        f"150 words of prose (the rest is code, tables, quotes; the 10th percentile is {lim['prose_p10']:.0f} "
        f"words), and they are detected in {lim['detected_under_150_prose']:.0%} of cases; the others in "
        f"{lim['detected_150_plus_prose']:.0%}. With a median of {lim['units_per_100_prose']:.1f} windows and "
        f"{lim['bits_per_100_prose']:.1f} bits per 100 words of prose, p < 1e-6 (20 bits) takes about "
        f"{2000 / lim['bits_per_100_prose']:.0f} words of prose; detecting 90% of responses >= 300 words would "
        f"take 20 bits from {lim['prose_p10']:.0f} words, a keyed choice every "
        f"{lim['prose_p10'] / 20:.0f} words: more than meaning-preserving wording offers. Pooling three answers "
        "of a cohort does reach it.",
        "",
    ]


def write_section(section: str, path: Path) -> None:
    """Replace (or append) only this benchmark's section of BENCHMARKS.md."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + section + ("\n" + old[nxt + 1 :] if nxt >= 0 else "")
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-bin", type=int, default=300)
    ap.add_argument("--clean", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="30 per bin, 300 clean, no BENCHMARKS.md")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--build-stopwindows", action="store_true", help="regenerate stopwindows.py from the tuning half")
    args = ap.parse_args()
    if args.build_stopwindows:
        print(f"{build_stopwindows()} stop windows written to {STOP_MODULE.relative_to(ROOT)}")
        return
    if args.quick:
        args.per_bin, args.clean = 30, 300
    res = run(args.per_bin, args.clean, args.seed)
    rows = res.pop("_rows")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"watermark_quality-{stamp}.json").write_text(json.dumps(res, indent=2))
    png_path = args.out / f"watermark_quality-{stamp}.png"
    png = str(png_path.relative_to(ROOT)) if plot(rows, png_path) else None
    command = "python bench/watermark_quality.py" + (" --quick" if args.quick else "")
    section = markdown(res, command, png)
    print(section)
    if not args.quick:
        write_section(section, ROOT / "BENCHMARKS.md")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
