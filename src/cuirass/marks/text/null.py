"""The exact null distribution of the green count of a text (or a corpus) written without the key.

Under H0 window i is green with probability 1/k_i, independently of the others (keyed.py), so

    X = sum_i green_i  ~  Poisson-binomial(1/k_1, ..., 1/k_n)

Windows with the same k form one binomial, X = sum_k X_k with X_k ~ Binomial(n_k, 1/k), hence

    P(X = x)  = (pmf_2 * pmf_3 * pmf_4 * ...)(x)      (* = discrete convolution)
    P(X >= x) = sum_{j >= x} P(X = j)

Every step adds non-negative numbers (direct convolution, then a tail sum from the far end), so the
result keeps a small *relative* error even deep in the tail, unlike an FFT or a normal approximation
(Hong 2013, "On computing the distribution function for the Poisson binomial distribution", compares
the methods); probabilities below ~1e-308 underflow to 0. Zeros at both ends of each binomial are
trimmed, so a corpus of a million windows costs a few tenths of a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
from scipy.stats import binom


class GreenNull:
    """P(X >= x) and P(X > x) for the green count of windows with the given numbers of variants."""

    def __init__(self, ks: Iterable[int]) -> None:
        counts = Counter(ks)
        self.n = sum(counts.values())
        self.mean = sum(n / k for k, n in counts.items())  # E[X] = sum 1/k_i
        self.var = sum(n * (1 / k) * (1 - 1 / k) for k, n in counts.items())  # Var[X] = sum (1/k_i)(1 - 1/k_i)
        pmf, offset = np.ones(1), 0  # pmf[j] = P(X = offset + j)
        for k, n in sorted(counts.items()):
            part = binom.pmf(np.arange(n + 1), n, 1.0 / k)
            nz = np.flatnonzero(part)
            lo, hi = int(nz[0]), int(nz[-1]) + 1
            pmf = np.convolve(pmf, part[lo:hi])
            offset += lo
        self._offset = offset
        self._tail = np.minimum(np.cumsum(pmf[::-1])[::-1], 1.0)  # _tail[j] = P(X >= offset + j)

    def sf_ge(self, x: np.ndarray | int) -> np.ndarray:
        """P(X >= x), exact up to floating-point rounding."""
        j = np.asarray(x) - self._offset
        out = np.where(j <= 0, 1.0, 0.0)
        inside = (j > 0) & (j < len(self._tail))
        return np.where(inside, self._tail[np.clip(j, 0, len(self._tail) - 1)], out)

    def sf_gt(self, x: np.ndarray | int) -> np.ndarray:
        """P(X > x)."""
        return self.sf_ge(np.asarray(x) + 1)

    @property
    def gamma(self) -> float:
        """The mean null probability that a window is green (1/2 when every choice is binary)."""
        return self.mean / self.n if self.n else 0.5
