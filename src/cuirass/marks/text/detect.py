"""Detect the text watermark: an exact p-value per key.

    X = windows of the text whose variant is the green one (one green variant per window, keyed.py)
    H0 (text written without the key): X ~ Poisson-binomial(1/k_1, ..., 1/k_n)      (see null.py)
    p = P(X >= x | H0)                                                   (exact, conservative)
    p_randomized = P(X > x) + U * P(X = x), U ~ Uniform(0, 1) keyed      (exactly Uniform(0, 1) under H0)

When every green window is kept, p = prod 1/k_i: a k-way choice is worth log2(k) bits. The plain
p-value is what evidence reports quote; because X is discrete, P(p <= a) <= a with gaps, so a
calibration check (a KS test on clean text) uses the randomized one (Lehmann & Romano, Testing
Statistical Hypotheses, 3rd ed., sec. 3.2). U is keyed on the text itself (a different input domain
from the windows), so it is reproducible, differs between texts, and under H0 is independent of X.

H0 is exact for one text and a key drawn independently of it. Under one fixed key, answers that share
a window also share its draw, so their p-values are correlated; single-answer scoring therefore skips
the windows common across answers (stopwindows.py), and a corpus is scored by merging its units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence

import numpy as np

from cuirass.marks.text.choices import Finder, iter_windows
from cuirass.marks.text.keyed import green, keyed_uniform
from cuirass.marks.text.null import GreenNull
from cuirass.marks.text.stopwindows import STOP_WINDOWS

Unit = tuple[str, int, int]  # (window, variant the text uses, number of variants k)

_DEFAULT = Finder()


@dataclasses.dataclass(frozen=True, slots=True)
class WatermarkResult:
    p_value: float  # P(X >= n_green) under H0: exact Poisson-binomial tail
    n_scored: int  # windows scored (each one unit, green with probability 1/k under H0)
    n_green: int
    p_randomized: float  # exactly Uniform(0, 1) under H0; for calibration checks
    n_windows: int
    gamma: float = 0.5  # mean null probability of green, E[X] / n
    null_var: float = 0.0  # Var[X] under H0

    @property
    def z(self) -> float:
        """Standardised excess of green windows (0 when nothing was scored)."""
        if self.n_scored == 0 or self.null_var <= 0:
            return 0.0
        return (self.n_green - self.gamma * self.n_scored) / math.sqrt(self.null_var)

    @property
    def bits(self) -> float:
        """Evidence in bits, -log2(p)."""
        return -math.log2(self.p_value) if self.p_value > 0 else math.inf


def units(text: str, finder: Finder | None = None, stop: frozenset[str] = STOP_WINDOWS) -> tuple[Unit, ...]:
    """The scoring units of a text: one per distinct window, in text order. Key independent: do once.

    `stop`: windows left out (by default those common across answers, see stopwindows.py); pass an
    empty set when merging a corpus, where each window counts once anyway.
    """
    chosen = iter_windows((finder or _DEFAULT).choices(text))
    return tuple((c.window, c.variant, c.k) for c in chosen if c.window not in stop)


def merge(groups: Iterable[Sequence[Unit]]) -> tuple[Unit, ...]:
    """Units of a corpus: windows repeated across texts count once (first occurrence wins)."""
    seen: dict[str, Unit] = {}
    for us in groups:
        for u in us:
            seen.setdefault(u[0], u)
    return tuple(seen.values())


def score_many(us: Sequence[Unit], keys: Sequence[bytes], salt: bytes = b"") -> list[WatermarkResult]:
    """One result per key for the same units (tokenise once, hash per key; the null is shared).

    `salt` identifies the scored material (e.g. the text) for the randomized p-value only.
    """
    null = GreenNull(k for _, _, k in us)
    digest = hashlib.sha256(salt).digest()
    greens = np.array([sum(v == green(key, w, k) for w, v, k in us) for key in keys], dtype=np.int64)
    uniforms = np.array([keyed_uniform(key, b"p|" + digest) for key in keys])
    sf_ge, sf_gt = null.sf_ge(greens), null.sf_gt(greens)
    rand = sf_gt + uniforms * (sf_ge - sf_gt)
    return [
        WatermarkResult(float(p), null.n, int(x), float(r), len(us), null.gamma, null.var)
        for p, x, r in zip(sf_ge, greens, rand, strict=True)
    ]


def score(us: Sequence[Unit], key: bytes, salt: bytes = b"") -> WatermarkResult:
    return score_many(us, [key], salt)[0]


def detect(text: str, key: bytes, finder: Finder | None = None) -> WatermarkResult:
    """Whether `text` carries the watermark of `key`: an exact p-value and the counts behind it."""
    return score(units(text, finder), key, text.encode())


def detect_many(text: str, keys: Sequence[bytes], finder: Finder | None = None) -> list[WatermarkResult]:
    """`detect` for many keys (e.g. every cohort and epoch), finding the choice points once."""
    return score_many(units(text, finder), keys, text.encode())
