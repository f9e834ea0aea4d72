"""The few statistics the distillation report quotes, each with its formula."""

from __future__ import annotations

import math

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
