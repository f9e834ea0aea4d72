"""Family-wise correction across every key tested, and the uniformity check of a control audit.

Holm-Bonferroni (Holm 1979, "A simple sequentially rejective multiple test procedure", Scand. J. Stat.):
sort the m p-values p_(1) <= ... <= p_(m); the adjusted values are

    q_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))

and hypothesis i is rejected when q_i < alpha. It controls the family-wise error rate
P(any true null rejected) <= alpha under *any* dependence between the tests: the proof uses only the
union bound P(U_i A_i) <= sum_i P(A_i) over the true nulls (Bonferroni's inequality), which needs no
independence. That matters here: every key is scored on the same corpus, and the channels share texts.
It needs only that each null p-value is valid, P(p <= t) <= t, which the exact binomial p-value is
(discreteness makes it conservative). Holm rejects everything Bonferroni (q = m * p) rejects, and more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.stats import kstest

METHOD = "holm"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (compare each with alpha)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adjusted
    return [float(x) for x in out]


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """m * p, capped at 1 (kept for comparison; Holm is uniformly more powerful)."""
    m = len(p_values)
    return [min(1.0, m * float(p)) for p in p_values]


@dataclasses.dataclass(frozen=True, slots=True)
class Uniformity:
    statistic: float
    p_value: float
    n: int
    uniform: bool  # the KS test does not reject uniformity at level `level`
    level: float

    def to_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)


def ks_uniform(p_values: Sequence[float], level: float = 0.01) -> Uniformity:
    """One-sample Kolmogorov-Smirnov test of p-values against Uniform(0, 1).

    Feed it randomized p-values (exactly uniform under H0); plain exact binomial p-values are
    conservative and discrete, so the KS test would reject them on clean text for that reason alone.
    """
    if len(p_values) == 0:
        return Uniformity(0.0, 1.0, 0, True, level)
    res = kstest(np.asarray(p_values, dtype=float), "uniform")
    return Uniformity(float(res.statistic), float(res.pvalue), len(p_values), bool(res.pvalue >= level), level)
