"""The few statistics the distillation report quotes, each with its formula."""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (Wilson 1927):

    centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exactly 0 at k = 0 (not a rounding residue)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def value_ratio(value: float, untrained: float, baseline: float) -> float | None:
    """(value − untrained) / (baseline − untrained): the share of condition A's gain a student kept.
    Works for accuracy (higher is better) and loss (lower is better) alike; None when A gained nothing."""
    gain_a = baseline - untrained
    if abs(gain_a) < 1e-12:
        return None
    return (value - untrained) / gain_a


def value_ratio_interval(
    student: dict[str, Any], untrained: dict[str, Any], baseline: dict[str, Any], draws: int = 4000, seed: int = 0
) -> list[float] | None:
    """A 95% interval of the value ratio by accuracy: a paired percentile bootstrap over the held-out problems
    (Efron & Tibshirani 1993, ch. 13). Every student answers the same problems, so each draw resamples the
    problems once and recomputes all three accuracies on them; draws where A's student gained nothing are
    left out. None without per-problem outcomes (`outcomes`: one "0"/"1" per problem) or when A gained
    nothing at all."""
    import numpy as np

    rows = [str(x.get("outcomes") or "") for x in (student, untrained, baseline)]
    if any(not r for r in rows) or len({len(r) for r in rows}) != 1:
        return None
    s, u, a = (np.frombuffer(r.encode(), dtype=np.uint8).astype(np.int64) - ord("0") for r in rows)
    if a.sum() == u.sum():
        return None
    picks = np.random.default_rng(seed).integers(0, len(s), size=(draws, len(s)))
    gain_s, gain_a = (s[picks] - u[picks]).sum(1), (a[picks] - u[picks]).sum(1)
    keep = gain_a != 0
    ratios = gain_s[keep] / gain_a[keep]
    low, high = np.quantile(ratios, [0.025, 0.975])
    return [float(low), float(high)]
