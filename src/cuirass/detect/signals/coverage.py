"""Topical coverage: how narrow an account's interests are, and which topic dominates.

Distillation targets a capability (reasoning, coding, tool use) and sweeps it; people wander.
Topics are coarse keyword families (phrases.TOPICS). Narrowness alone is weak evidence (a
programmer asks about code), but the dominant topic helps link accounts with similar coverage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cuirass.detect import digest as D
from cuirass.detect.digest import Digest
from cuirass.detect.phrases import OTHER, TOPICS
from cuirass.detect.signals.base import Context, LazyHistogram, Link, Signal, register

MIN_PROMPTS = 8.0


class CoverageState:
    __slots__ = ("topics",)

    def __init__(self) -> None:
        self.topics = LazyHistogram(len(TOPICS))


def _narrowness(counts: Sequence[float]) -> tuple[int, float, float]:
    """(dominant topic, its share, number of prompts) over topical prompts ("other" excluded)."""
    topical = list(counts[:OTHER])
    n = sum(topical)
    if n <= 0:
        return OTHER, 0.0, 0.0
    top = max(range(OTHER), key=topical.__getitem__)
    return top, topical[top] / n, n


class CoverageSignal(Signal):
    """+ up to 0.8 when >= 85% of topical prompts share one topic (after MIN_PROMPTS prompts)."""

    name = "coverage"
    summary_size = len(TOPICS)

    def new_state(self) -> CoverageState:
        return CoverageState()

    def observe(self, state: CoverageState, d: Digest, decay: float, ctx: Context) -> float:
        if not d.flags & D.SHORT:
            state.topics.add(d.topic, decay)
        topical = state.topics.bins[:OTHER]  # scaled counts: shares need no unscaling
        total = sum(topical)
        if total < MIN_PROMPTS * state.topics.unit or max(topical) < 0.85 * total:
            return 0.0
        return self._evidence(state.topics.counts())

    @staticmethod
    def _evidence(counts: Sequence[float]) -> float:
        _, share, n = _narrowness(counts)
        if n < MIN_PROMPTS or share < 0.85:
            return 0.0
        return 0.8 * (share - 0.85) / 0.15

    def summary(self, state: CoverageState) -> Sequence[float]:
        return state.topics.counts()

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        return self._evidence(summary)

    @staticmethod
    def _describe(counts: Sequence[float]) -> str:
        top, share, n = _narrowness(counts)
        return f"narrow focus: {share:.0%} of {n:.0f} topical prompts are about {TOPICS[top]}"

    def explain(self, state: CoverageState) -> str:
        return self._describe(state.topics.counts())

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        return self._describe(summary)

    def links(self, state: CoverageState) -> Iterable[Link]:
        top, share, n = _narrowness(state.topics.bins)
        n /= state.topics.unit
        if n >= 4 and share >= 0.6:
            yield ("topic", TOPICS[top])


register(CoverageSignal)
