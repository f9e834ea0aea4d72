"""Text-level keyed watermark: rewrite the finished answer, detect it later with an exact p-value.

How it works (the gateway has no logits, so the watermark lives in the wording):
- segment.py   protects code, URLs, maths, quotes, JSON, tables; the rest is tokenised.
- lexicon.py   what a substitution class is; vocab.py, optional.py and spelling.py list them
               (contractions, connectives, synonyms, optional words such as "that" and "to",
               US/UK spellings, hyphenation); serial.py adds the Oxford comma, intro.py the comma
               after a short opening phrase, markdown.py the list markers ("-"/"*", "1."/"1)") and
               full stops after list items; invisible.py an optional invisible channel.
- choices.py   finds the choice points of a text and the window (class | two previous words) of each;
               finder_for builds the finder for the watermark's options (both sides use the same one).
- keyed.py     the one keyed function: which variant of each window is green (one of k).
- embed.py     moves every choice point to its green variant.
- null.py      the exact null of the green count: Poisson-binomial, 1/k per window.
- detect.py    counts green windows over distinct windows: exact p-value (stopwindows.py:
               windows common across answers are left out of single-answer scores).

What a reader notices: nothing is added or removed, numbers, code and quotes are untouched, and
every variant is standard English; but a careful reader may see occasional British spellings
("organise", "behaviour") in American prose, a style that wavers within one answer ("don't" here,
"do not" there; "Firstly, ... Second, ..."), a few more formal or less formal synonyms ("utilize",
"a number of", "prior to starting", "based upon"), "which" for restrictive "that", an optional
"that" or "to" kept or dropped ("I think that you", "helps to reduce"), an optional comma kept or
dropped ("In this case you"), full stops after the items of a list added or dropped (all of them),
and, in the raw Markdown only, "*" bullets or "1)" numbering.

Limits: about 6 windows (6 bits) per 100 words of prose (code-heavy and non-English answers have
few), a k-way window worth log2(k) bits; one answer reaches p < 1e-6 when it carries >= 20 bits:
half of the answers of >= 300 words (60-80% of those with >= 300 words of prose; code and tables
carry nothing); pooling three answers of a cohort (merge()) reaches it for ~98% (BENCHMARKS.md).
Anyone who paraphrases, normalises contractions and spelling, or re-writes with another model removes
it; the green share falls linearly with the share of choices reverted (see BENCHMARKS.md).

References: Kirchenbauer et al. 2023 (green lists, arXiv:2301.10226); Topkara et al. 2006 (synonym
substitution watermarks); Yang et al. 2023 (watermarking black-box LLM text by substitution,
arXiv:2305.08883); Fernandez et al. 2023 (scoring each window once, arXiv:2308.00113).
"""

from cuirass.marks.text.choices import ALL_GROUPS, DEFAULT_GROUPS, Choice, Finder, finder_for
from cuirass.marks.text.detect import (
    Unit,
    WatermarkResult,
    detect,
    detect_many,
    merge,
    score,
    score_many,
    units,
)
from cuirass.marks.text.embed import embed

__all__ = [
    "ALL_GROUPS",
    "DEFAULT_GROUPS",
    "Choice",
    "Finder",
    "Unit",
    "WatermarkResult",
    "detect",
    "detect_many",
    "embed",
    "finder_for",
    "merge",
    "score",
    "score_many",
    "units",
]
