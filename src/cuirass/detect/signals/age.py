"""Account age: fresh accounts that start harvesting at once.

Campaigns open accounts in bursts and use them right away, hard, until they are banned. An
old account with a long ordinary history is a little less likely to be one. The creation
time is also a linking feature: accounts opened within the same hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import Context, Link, Signal, register

DAY = 86400.0
BUSY_FIRST_DAY = 50  # requests within a day of signing up that mark an eager new account


class AgeState:
    __slots__ = ("created", "age_at_first", "first_day")

    def __init__(self) -> None:
        self.created: float | None = None
        self.age_at_first: float | None = None  # seconds between sign-up and first request
        self.first_day = 0  # requests within a day of sign-up


class AgeSignal(Signal):
    """+0.5 for a first request within a day of sign-up, +0.7 more for a busy first day; -0.5 if > 90 days old."""

    name = "age"
    per_account = True
    summary_size = 3

    def new_state(self) -> AgeState:
        return AgeState()

    def observe(self, state: AgeState, d: Digest, decay: float, ctx: Context) -> float:
        if d.created is not None:
            if state.created is None:
                state.created = d.created
            if state.age_at_first is None:
                state.age_at_first = max(0.0, d.ts - d.created)
            if d.ts - state.created < DAY:
                state.first_day += 1
        return self._evidence(*self.summary(state))

    def summary(self, state: AgeState) -> Sequence[float]:
        if state.age_at_first is None:
            return (0.0, 0.0, 0.0)
        young = 1.0 if state.age_at_first < DAY else 0.0
        old = 1.0 if state.age_at_first > 90 * DAY else 0.0
        return (young, 1.0 if state.first_day >= BUSY_FIRST_DAY else 0.0, old)

    @staticmethod
    def _evidence(young: float, busy: float, old: float, members: float = 1.0) -> float:
        return (0.5 * young + 0.7 * busy - 0.5 * old) / members

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        young, busy, old = summary
        return self._evidence(young, busy, old, members=max(members, 1))

    def _describe(self, young: float, busy: float, old: float, members: float = 1.0) -> str:
        if members > 1:
            return f"new accounts: {young / members:.0%} used within a day of sign-up"
        if young:
            return "new account used within a day of sign-up" + (" and busy on day one" if busy else "")
        return "established account" if old else "account age unremarkable"

    def explain(self, state: AgeState) -> str:
        return self._describe(*self.summary(state))

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        young, busy, old = summary
        return self._describe(young, busy, old, members=max(members, 1))

    def links(self, state: AgeState) -> Iterable[Link]:
        if state.created is not None:
            yield ("created", int(state.created // 3600))  # signed up within the same hour


register(AgeSignal)
