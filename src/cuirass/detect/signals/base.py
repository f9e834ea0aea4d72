"""The one interface every signal implements, and the registry that names them.

A signal turns the stream of an account's request digests into evidence (log-odds, see
`cuirass.detect.evidence`) that the account is harvesting outputs. It keeps a small,
bounded per-account state and does O(1) work per request. It can also:

- summarise its state as a fixed-length vector of additive statistics, so that a campaign
  (a community of accounts) can be scored as one pooled account;
- name the features by which its accounts may be linked to others (shared templates,
  networks, payment instruments, ...), for campaign detection.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
from mypy_extensions import mypyc_attr

from cuirass.detect.digest import Digest
from cuirass.detect.evidence import N_CAP, clip, rate_llr
from cuirass.registry import Registry

Link = tuple[str, object]  # a linking feature: (kind, value), e.g. ("pay", "pf_91c2..."), ("tpl", 0x1a2b3c4d)


@dataclasses.dataclass(slots=True)
class Context:
    """Facts shared by all accounts that some signals need (e.g. when a model was first seen)."""

    model_first_seen: dict[str, float] = dataclasses.field(default_factory=dict)


@mypyc_attr(allow_interpreted_subclasses=True)  # a plugin's signal is plain Python (cuirass.compiled)
class Signal(abc.ABC):
    """A detector of one behaviour. Subclasses set `name`, and register with `register(TheClass)` (`@register`
    in a plugin; a compiled module's classes take no decorator)."""

    name: ClassVar[str]
    group: ClassVar[str | None] = None  # signals of one group are censored together (evidence.GROUP_CAPS)
    summary_size: ClassVar[int] = 0
    # True when the summary holds facts about the account (0/1: new, pivoted), not counts that grow with its
    # requests: a campaign pools them as the share of members (mean x members), not as per-request rates.
    per_account: ClassVar[bool] = False
    # True when the summary counts requests that show a trait ordinary requests rarely show (hits, requests): where
    # members hold few requests each, a campaign pools it from groups of them (campaigns.pool).
    rare_trait: ClassVar[bool] = False

    @abc.abstractmethod
    def new_state(self) -> Any:
        """A fresh per-account state (bounded size)."""

    @abc.abstractmethod
    def observe(self, state: Any, d: Digest, decay: float, ctx: Context) -> float:
        """Fold one request into `state` (older weight multiplied by `decay`); return the evidence now."""

    @abc.abstractmethod
    def explain(self, state: Any) -> str:
        """A short human-readable reason for the current evidence."""

    def summary(self, state: Any) -> Sequence[float]:
        """Additive statistics of `state` (length `summary_size`); members' summaries sum to a pooled one."""
        return ()

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        """Evidence of a pooled summary of `members` accounts (a campaign judged as one account)."""
        return 0.0

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        return self.name

    def consistency(self, member: Sequence[float], pooled: Sequence[float]) -> float:
        """Log-likelihood ratio of a member's summary under its campaign's pooled behaviour vs
        an ordinary user's; 0 when this signal cannot tell. Guards campaign lifts (campaigns.py)."""
        return 0.0

    def consistency_many(self, members: np.ndarray, pooled: Sequence[float]) -> np.ndarray:
        """`consistency` of each row of a (members x summary_size) matrix."""
        if type(self).consistency is Signal.consistency:
            return np.zeros(len(members))
        return np.array([self.consistency(row, pooled) for row in members.tolist()], dtype=np.float64)

    def links(self, state: Any) -> Iterable[Link]:
        """Features (kind, value) this account may share with others; kinds are in campaigns.LINK_WEIGHTS."""
        return ()


SIGNALS: Registry[type[Signal]] = Registry("signal")
register = SIGNALS.register  # make a signal available by its name (a class decorator, or called after the class)


def prune_counts(counts: dict[int, int], keep: int) -> dict[int, int]:
    """The `keep` most frequent entries of a bounded key counter; among equal counts the most recently inserted win."""
    items = list(counts.items())
    items.reverse()
    items.sort(key=lambda kv: kv[1], reverse=True)  # stable: recency order kept within a count
    kept = items[:keep]
    kept.reverse()
    return dict(kept)


class DecayedRate:
    """Exponentially decayed count of requests and of those showing a feature (plus one example)."""

    __slots__ = ("hits", "n", "example")

    def __init__(self) -> None:
        self.hits = 0.0
        self.n = 0.0
        self.example: str | None = None

    def add(self, hit: float, decay: float) -> None:
        """Count one request; `hit` in [0, 1] is how much it shows the feature (True = 1)."""
        self.hits = self.hits * decay + hit
        self.n = self.n * decay + 1.0

    def skip(self, decay: float) -> None:
        """Age the counts without counting this request (it does not qualify)."""
        self.hits *= decay
        self.n *= decay

    @property
    def share(self) -> float:
        return self.hits / self.n if self.n > 0 else 0.0


@mypyc_attr(serializable=True)  # checkpoints restore it without calling __init__ (detect.checkpoint)
class LazyHistogram:
    """A decayed histogram in O(1) per update: new weight grows by 1/decay instead of old bins shrinking.

    Shares and entropy are scale-free, so only the unit weight needs care: bins are
    renormalised when it grows large. Entropy is kept incrementally from T = sum b ln b and
    B = sum b (H = ln B - T / B), so reading it costs no pass over the bins.
    """

    __slots__ = ("bins", "unit", "total_b", "t", "nonempty")

    def __init__(self, size: int) -> None:
        self.bins = [0.0] * size
        self.unit = 1.0
        self.total_b = 0.0
        self.t = 0.0
        self.nonempty = 0

    def add(self, index: int, decay: float) -> None:
        self.unit /= decay
        if self.unit > 1e100:
            self._renormalise()
        old = self.bins[index]
        new = old + self.unit
        self.bins[index] = new
        self.total_b += self.unit
        self.t += new * math.log(new) - (old * math.log(old) if old > 0 else 0.0)
        if old == 0.0:
            self.nonempty += 1

    def _renormalise(self) -> None:
        unit = self.unit
        self.bins = [b / unit for b in self.bins]
        self.unit = 1.0
        self.total_b = sum(self.bins)
        self.t = sum(b * math.log(b) for b in self.bins if b > 0)

    def counts(self) -> list[float]:
        return [b / self.unit for b in self.bins]

    @property
    def total(self) -> float:
        """The decayed number of entries."""
        return self.total_b / self.unit

    def entropy(self) -> float:
        """Plug-in entropy of the shares, in nats."""
        b = self.total_b
        return max(0.0, math.log(b) - self.t / b) if b > 0 else 0.0


def rate_consistency_many(
    hits: np.ndarray, n: np.ndarray, pooled_hits: float, pooled_n: float, p0: float, lo: float, hi: float
) -> np.ndarray:
    """`rate_consistency` for arrays of members, censored to [-lo, hi]."""
    if pooled_n <= 0 or pooled_hits / pooled_n <= p0:
        return np.zeros(len(hits))
    p_c = min(pooled_hits / pooled_n, 0.99)
    scale = np.minimum(1.0, N_CAP / np.maximum(n, 1e-12))
    k, m = hits * scale, n * scale
    out = k * math.log(p_c / p0) + (m - k) * math.log((1.0 - p_c) / (1.0 - p0))
    return np.clip(np.where(n > 0, out, 0.0), -lo, hi)


def rate_consistency(hits: float, n: float, pooled_hits: float, pooled_n: float, p0: float) -> float:
    """LLR of `hits` out of `n` under the pooled rate p_c versus the base rate p0:

        k ln(p_c / p0) + (n - k) ln((1 - p_c) / (1 - p0)),   (k, n) scaled down to at most N_CAP requests

    0 when the pooled rate is not above p0 (the feature does not characterise the campaign).
    """
    if n <= 0 or pooled_n <= 0:
        return 0.0
    p_c = pooled_hits / pooled_n
    if p_c <= p0:
        return 0.0
    p_c = min(p_c, 0.99)
    scale = min(1.0, N_CAP / n)
    k, m = hits * scale, n * scale
    return k * math.log(p_c / p0) + (m - k) * math.log((1.0 - p_c) / (1.0 - p0))


@mypyc_attr(allow_interpreted_subclasses=True)
class RateSignal(Signal):
    """A signal about how often an account's requests show one feature, against a benign base rate.

    Evidence is the censored, signed binomial GLR of `cuirass.detect.evidence.rate_llr`.
    Subclasses set `p0` (share among ordinary users' requests), the censoring range `lo`/`hi`
    and `hit` (True/False, or None when the request does not count).
    """

    p0: ClassVar[float]
    lo: ClassVar[float] = 1.0
    hi: ClassVar[float] = 3.0
    prior_n: ClassVar[float] = 2.0
    summary_size = 2

    @abc.abstractmethod
    def hit(self, d: Digest) -> float | None:
        """How much this request shows the feature (0..1, True = 1); None if it does not count."""

    def new_state(self) -> DecayedRate:
        return DecayedRate()

    def observe(self, state: DecayedRate, d: Digest, decay: float, ctx: Context) -> float:
        hit = self.hit(d)
        if hit is None:
            state.hits *= decay
            state.n *= decay
        else:
            state.hits = state.hits * decay + hit
            state.n = state.n * decay + 1.0
            if hit and d.phrase is not None:
                state.example = d.phrase
        value = rate_llr(state.hits, state.n, self.p0, self.prior_n)
        return -self.lo if value < -self.lo else self.hi if value > self.hi else value

    def rate_evidence(self, hits: float, n: float) -> float:
        return clip(rate_llr(hits, n, self.p0, self.prior_n), self.lo, self.hi)

    def summary(self, state: DecayedRate) -> Sequence[float]:
        return (state.hits, state.n)

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        return self.rate_evidence(summary[0], summary[1])

    def consistency(self, member: Sequence[float], pooled: Sequence[float]) -> float:
        return clip(rate_consistency(member[0], member[1], pooled[0], pooled[1], self.p0), self.lo, self.hi)

    def consistency_many(self, members: np.ndarray, pooled: Sequence[float]) -> np.ndarray:
        return rate_consistency_many(members[:, 0], members[:, 1], pooled[0], pooled[1], self.p0, self.lo, self.hi)

    def explain(self, state: DecayedRate) -> str:
        return self.describe(state.share, state.n, state.example)

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        share = summary[0] / summary[1] if summary[1] > 0 else 0.0
        return self.describe(share, summary[1], None)

    def describe(self, share: float, n: float, example: str | None) -> str:
        return f"{self.name}: {share:.0%} of {n:.0f} recent requests"
