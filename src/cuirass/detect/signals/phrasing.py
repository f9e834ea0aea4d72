"""Loose phrasing: the near-duplicate sentences an account writes, as links to accounts that write alike.

A network that paraphrases its instruction per request shares no exact template key, but its
members' sentences fall into the same MinHash/LSH buckets (detect/sketch.py). This signal gives no
evidence of its own (people quote, and reuse their own phrasing); it offers the buckets an account
has used as linking features of kind "near", so that the campaign job (campaigns.py) can link,
judge and lift a network whose only common trait is how it words its requests, and a known
network's near-duplicate phrasing can become its signature. State is bounded: at most KEEP keys.
"""

from __future__ import annotations

from collections.abc import Iterable

from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import Context, Link, Signal, prune_counts, register
from cuirass.detect.signals.elicitation import TASK_WORDS

KEEP = 48  # LSH keys kept per account (most frequent, then most recent)
LINKED = 12  # of which offered as links (a sentence yields sketch.BANDS keys)


class PhrasingState:
    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[int, int] = {}


class PhrasingSignal(Signal):
    """No evidence alone; links accounts whose sentences are near-duplicates (MinHash/LSH buckets)."""

    name = "phrasing"

    def new_state(self) -> PhrasingState:
        return PhrasingState()

    def observe(self, state: PhrasingState, d: Digest, decay: float, ctx: Context) -> float:
        if d.near and d.words >= TASK_WORDS:
            keys = state.keys
            for key in d.near:
                keys[key] = keys.get(key, 0) + 1
            if len(keys) > 2 * KEEP:
                state.keys = prune_counts(keys, KEEP)
        return 0.0

    def explain(self, state: PhrasingState) -> str:
        return f"writes {len(state.keys)} distinct phrasings"

    def links(self, state: PhrasingState) -> Iterable[Link]:
        keys = state.keys
        top = sorted(keys, key=keys.__getitem__, reverse=True)[:LINKED] if len(keys) > LINKED else keys
        for key in top:
            yield ("near", key)


register(PhrasingSignal)
