"""Prompt templates and system prompts: the same scaffolding around ever-changing content.

A harvesting script wraps each item of its dataset in one (or a few paraphrased) templates;
a person rarely repeats a whole sentence across different questions. Each prompt is reduced
to template keys (`digest.template_keys`: hashes of sentences and of the prompt's first and
last words, after numbers, names and quoted spans are normalised away). A request is
"templated" when it carries a task of its own (TASK_WORDS or more) and both scaffolding seen
before in the account (a known key) and new content (an unknown key): the same wrapper around
a new item. Short repeated follow-ups ("can you check step 2 again?") and exact resends do not
count.

Keys and system prompts are also linking features: accounts that share them are candidates
for one campaign (see campaigns.py). Per-account state is bounded: at most KEEP keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import Context, DecayedRate, Link, RateSignal, prune_counts, register
from cuirass.detect.signals.elicitation import TASK_WORDS

KEEP = 48  # template keys kept per account (most frequent, then most recent)
LINKED_KEYS = 8  # of which offered as linking features
KEEP_SYSTEM = 4


class TemplateState:
    __slots__ = ("rate", "keys", "systems")

    def __init__(self) -> None:
        self.rate = DecayedRate()
        self.keys: dict[int, int] = {}
        self.systems: dict[int, int] = {}


class TemplateSignal(RateSignal):
    """Share of requests that reuse a template key already seen in the account.

    p0: in ShareGPT conversations grouped per user, about 4% of prompts repeat a normalised
    sentence or edge of an earlier prompt of the same user (quoted text, "continue", ...).
    """

    name = "templates"
    group = "automation"
    p0 = 0.05
    rare_trait = True
    lo = 0.5
    hi = 2.0

    def new_state(self) -> TemplateState:  # type: ignore[override]
        return TemplateState()

    def hit(self, d: Digest) -> float | None:  # pragma: no cover - observe decides with the state
        return None

    def observe(self, state: TemplateState, d: Digest, decay: float, ctx: Context) -> float:  # type: ignore[override]
        keys = state.keys
        if d.keys and d.words >= TASK_WORDS:
            seen = fresh = False
            for key in d.keys:
                count = keys.get(key, 0)
                if count:
                    seen = True
                else:
                    fresh = True
                keys[key] = count + 1
            state.rate.add(1.0 if seen and fresh else 0.0, decay)
            if len(keys) > 2 * KEEP:
                state.keys = prune_counts(keys, KEEP)
        else:
            state.rate.skip(decay)
        if d.system_key:
            systems = state.systems
            systems[d.system_key] = systems.get(d.system_key, 0) + 1
            if len(systems) > 2 * KEEP_SYSTEM:
                state.systems = prune_counts(systems, KEEP_SYSTEM)
        return self.rate_evidence(state.rate.hits, state.rate.n)

    def summary(self, state: TemplateState) -> Sequence[float]:  # type: ignore[override]
        return (state.rate.hits, state.rate.n)

    def explain(self, state: TemplateState) -> str:  # type: ignore[override]
        repeated = sum(1 for c in state.keys.values() if c > 1)
        return (
            f"reuses a prompt template in {state.rate.share:.0%} of {state.rate.n:.0f} recent prompts "
            f"({repeated} recurring template sentences)"
        )

    def describe(self, share: float, n: float, example: str | None) -> str:
        return f"reuses a prompt template in {share:.0%} of {n:.0f} recent prompts"

    def links(self, state: TemplateState) -> Iterable[Link]:
        keys = state.keys
        top = sorted(keys, key=keys.__getitem__, reverse=True)[:LINKED_KEYS] if len(keys) > LINKED_KEYS else keys
        for key in top:
            yield ("tpl", key)
        for key in state.systems:
            yield ("sys", key)


register(TemplateSignal)
