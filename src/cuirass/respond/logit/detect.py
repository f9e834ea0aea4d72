"""Detect the logit watermark: an exact binomial p-value per key.

    pairs  = the distinct (previous h tokens, token) windows of the re-tokenised text, each once
    X      = number of green pairs (keyed.py), n = number of pairs
    H0 (text written without the key): X ~ Binomial(n, gamma)
    p      = P(X >= x | H0) = binom.sf(x - 1, n, gamma)                         (exact)
    p_rand = P(X > x) + U * P(X = x), U ~ Uniform(0, 1) keyed on the tokens      (exactly uniform under H0)

Scoring each window once (Fernandez et al., 2023, "Three Bricks to Consolidate Watermarks for LLMs",
sec. 4) keeps the trials independent when a text repeats itself; without it repeated n-grams inflate
X and the p-value is no longer valid. p is what evidence quotes; p_rand is for calibration checks (a
KS test on clean text), as in the text watermark's detect.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binom

from cuirass.respond.logit.keyed import CONTEXT, GAMMA, context_seed, green


@dataclasses.dataclass(frozen=True, slots=True)
class LogitWatermarkResult:
    p_value: float  # P(X >= n_green) under H0
    n_scored: int  # distinct (context, token) windows
    n_green: int
    p_randomized: float
    gamma: float

    @property
    def z(self) -> float:
        if self.n_scored == 0:
            return 0.0
        g = self.gamma
        return (self.n_green - g * self.n_scored) / math.sqrt(self.n_scored * g * (1 - g))


def windows(token_ids: Sequence[int], context: int = CONTEXT) -> list[tuple[tuple[int, ...], int]]:
    """The distinct (context, token) windows, first occurrence order."""
    ids = [int(t) for t in token_ids]
    seen: dict[tuple[tuple[int, ...], int], None] = {}
    for i in range(context, len(ids)):
        seen.setdefault((tuple(ids[i - context:i]), ids[i]), None)
    return list(seen)


def detect_tokens(token_ids: Sequence[int], key: bytes, gamma: float = GAMMA,
                  context: int = CONTEXT) -> LogitWatermarkResult:
    """Whether these token ids carry the watermark of `key`."""
    return _score(windows(token_ids, context), token_ids, key, gamma)


def detect_corpus(token_lists: Sequence[Sequence[int]], key: bytes, gamma: float = GAMMA,
                  context: int = CONTEXT) -> LogitWatermarkResult:
    """One p-value for many texts (e.g. the answers one cohort harvested): each window counts once overall."""
    seen: dict[tuple[tuple[int, ...], int], None] = {}
    for ids in token_lists:
        for w in windows(ids, context):
            seen.setdefault(w, None)
    flat = [t for c, tok in seen for t in (*c, tok)]  # salt of the randomized p-value only
    return _score(list(seen), flat, key, gamma)


def _score(ws: list[tuple[tuple[int, ...], int]], salt_ids: Sequence[int], key: bytes,
           gamma: float) -> LogitWatermarkResult:
    x = sum(bool(green(context_seed(key, c), np.array([t]), gamma)[0]) for c, t in ws)
    n = len(ws)
    ge, gt = float(binom.sf(x - 1, n, gamma)), float(binom.sf(x, n, gamma))
    digest = hashlib.sha256(np.asarray(salt_ids, dtype="<i8").tobytes()).digest()
    u = int.from_bytes(hashlib.blake2b(b"p|" + digest, digest_size=8, key=key[:64]).digest(), "big") / 2**64
    return LogitWatermarkResult(ge, n, x, gt + u * (ge - gt), gamma)


def detect_text(text: str, tokenizer: Any, key: bytes, gamma: float = GAMMA,
                context: int = CONTEXT) -> LogitWatermarkResult:
    """Re-tokenise `text` with the model's tokenizer and score it (the prompt is not needed)."""
    return detect_tokens(tokenizer.encode(text, add_special_tokens=False), key, gamma, context)
