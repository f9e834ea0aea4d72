"""Evidence arithmetic: how one signal's counts become log-odds, and log-odds a risk score.

The risk of an account is a logistic combination of evidence (naive-Bayes style):

    score = sigmoid(PRIOR + sum_i e_i),     e_i = clip(LLR_i, -lo_i, +hi_i)

where LLR_i is the log-likelihood ratio "extractor vs ordinary user" that signal i finds in
the account's (decayed) history. Each LLR is censored to a fixed range, as in Huber's robust
probability-ratio test (Huber 1965, "A robust version of the probability ratio test"): no
single signal, however extreme, can decide alone, and correlated signals cannot run away.

For rate signals (a share of requests that show some feature, benign base rate p0) the LLR
is the binomial generalised likelihood ratio, n * KL(p_hat || p0), signed by the direction of
the deviation, with p_hat shrunk towards p0 by a pseudo-count (a Beta prior), so one request
proves little. n is capped (N_CAP): beyond a few dozen requests more data no longer adds
evidence, only the rate does. Without the cap a heavy, honest user whose rate is slightly
above p0 would be "significant" (and a benign group pooled as a campaign even more so).

Signals that measure the same thing are censored together as well: templates, timing and
conversation shape all say "a script is sending this", which honest applications and batch
jobs say too; counted as independent they would add up to a conviction. GROUP_CAPS bounds each
group's sum (the naive-Bayes independence assumption is only trusted across groups).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_log = math.log

PRIOR = -4.0  # log-odds that an account is an extractor before any evidence (~1.8%)
N_CAP = 40.0  # requests after which a rate's evidence stops growing with volume
GROUP_CAPS = {"automation": (2.0, 2.5)}  # group -> (lo, hi): bounds on the summed evidence of its signals
MAX_LIFT = 5.0  # most log-odds a campaign can add to a member's own (campaigns.py)


def kl_bernoulli(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)) in nats; p, q in (0, 1)."""
    return p * math.log(p / q) + (1.0 - p) * math.log((1.0 - p) / (1.0 - q))


def rate_llr(hits: float, n: float, p0: float, prior_n: float = 1.0, n_cap: float = N_CAP) -> float:
    """Signed binomial GLR of `hits` out of `n` (decayed counts) against base rate p0.

    p_hat = (hits + prior_n * p0) / (n + prior_n); LLR = +-min(n, n_cap) * KL(p_hat || p0),
    positive when the feature is more frequent than among ordinary users.
    """
    if n <= 0.0:
        return 0.0
    p = (hits + prior_n * p0) / (n + prior_n)  # hot path: KL inlined
    p = 1e-9 if p < 1e-9 else 1.0 - 1e-9 if p > 1.0 - 1e-9 else p
    q = 1.0 - p
    llr = (n if n < n_cap else n_cap) * (p * _log(p / p0) + q * _log(q / (1.0 - p0)))
    return llr if p >= p0 else -llr


def clip(value: float, lo: float, hi: float) -> float:
    """Censor an LLR to [-lo, +hi] (Huber's censoring)."""
    return -lo if value < -lo else hi if value > hi else value


class Combiner:
    """PRIOR + the sum of signal evidence, each group's part censored to GROUP_CAPS."""

    __slots__ = ("free", "groups")

    def __init__(self, groups: Sequence[str | None]) -> None:
        self.free = [i for i, g in enumerate(groups) if g is None]
        members: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            if g is not None:
                members.setdefault(g, []).append(i)
        self.groups = [(idx, *GROUP_CAPS.get(g, (math.inf, math.inf))) for g, idx in members.items()]

    def __call__(self, values: Sequence[float]) -> float:
        total = PRIOR
        for i in self.free:
            total += values[i]
        for idx, lo, hi in self.groups:
            part = 0.0
            for i in idx:
                part += values[i]
            total += -lo if part < -lo else hi if part > hi else part
        return total


def combine(values: Sequence[float], groups: Sequence[str | None]) -> float:
    """PRIOR + the sum of signal evidence, each group's part censored to GROUP_CAPS."""
    return Combiner(groups)(values)


def sigmoid(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)
    return z / (1.0 + z)


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


def decay_factor(dt: float, tau: float) -> float:
    """Weight left after dt seconds of event time with half-life-like constant tau: exp(-dt/tau)."""
    return math.exp(-dt / tau) if dt > 0.0 else 1.0
