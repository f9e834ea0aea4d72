"""Conversation shape: one-shot prompts versus conversations that continue.

People follow up: they ask again, correct, say "continue". A harvester sends each item once
and takes the answer. The feature is the share of requests that carry no earlier assistant
turn. Many applications are one-shot too, so the evidence is bounded tightly.
"""

from __future__ import annotations

from cuirass.detect import digest as D
from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import RateSignal, register


class ShapeSignal(RateSignal):
    """Share of single-shot requests. p0: ~35% of ShareGPT user turns open a conversation; 45% used."""

    name = "shape"
    group = "automation"
    p0 = 0.45
    lo = 2.0
    hi = 1.0
    prior_n = 3.0

    def hit(self, d: Digest) -> float | None:
        return 0.0 if d.flags & D.FOLLOWUP else 1.0

    def describe(self, share: float, n: float, example: str | None) -> str:
        return f"single-shot prompts (no follow-up) in {share:.0%} of {n:.0f} recent requests"


register(ShapeSignal)
