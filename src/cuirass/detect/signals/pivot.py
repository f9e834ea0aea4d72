"""Model pivots: switching to a newly released model within a day of its release.

Distillers move to a new model within 24 hours of launch to harvest it first (docs/architecture.md, threat
model). Plenty of honest users try a new model early too, so this weighs little per account;
many accounts of one community pivoting together is what counts (the "pivot" linking feature).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import Context, Link, Signal, register

NEW_MODEL_WINDOW = 86400.0
MAX_MODELS = 8


class PivotState:
    __slots__ = ("models", "pivot")

    def __init__(self) -> None:
        self.models: dict[str, int] = {}
        self.pivot: str | None = None  # the new model this account switched to early


class PivotSignal(Signal):
    """+0.5 when an account that used other models moves to one first seen (globally) < 24 h ago."""

    name = "pivot"
    per_account = True
    summary_size = 1

    def new_state(self) -> PivotState:
        return PivotState()

    def observe(self, state: PivotState, d: Digest, decay: float, ctx: Context) -> float:
        models = state.models
        if d.model not in models:
            first_seen = ctx.model_first_seen.setdefault(d.model, d.ts)
            if models and state.pivot is None and d.ts - first_seen <= NEW_MODEL_WINDOW:
                state.pivot = d.model
            if len(models) < MAX_MODELS:
                models[d.model] = 0
        if d.model in models:
            models[d.model] += 1
        return 0.5 if state.pivot is not None else 0.0

    def summary(self, state: PivotState) -> Sequence[float]:
        return (1.0 if state.pivot is not None else 0.0,)

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        # A community where most members pivoted together: up to +1.
        share = summary[0] / max(members, 1)
        return 1.0 * share if share > 0.5 else 0.0

    def explain(self, state: PivotState) -> str:
        return f"switched to new model {state.pivot} within a day of its release"

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        return f"{summary[0] / max(members, 1):.0%} of accounts switched to a new model within a day of its release"

    def links(self, state: PivotState) -> Iterable[Link]:
        if state.pivot is not None:
            yield ("pivot", state.pivot)


register(PivotSignal)
