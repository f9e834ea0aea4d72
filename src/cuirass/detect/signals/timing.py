"""Timing: how regular the gaps between requests are, bursts, and the 24-hour activity profile.

People read, think and type: the gaps between their requests vary a lot (coefficient of
variation well above 1 once sessions and breaks mix) and they sleep, so their requests fall
into some hours of the day. A script paced to stay under a rate limit is regular, and a
harvesting fleet runs around the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from cuirass.detect.digest import Digest
from cuirass.detect.evidence import clip, rate_llr
from cuirass.detect.signals.base import Context, DecayedRate, LazyHistogram, Link, Signal, register

SESSION_GAP = 1800.0  # longer gaps are breaks between sessions, not pacing
MIN_GAPS = 6.0  # gaps needed before regularity counts
MIN_HOURS = 36.0  # requests needed before the daily profile counts
BURST_GAP = 1.0  # seconds: faster than anyone types


class TimingState:
    __slots__ = ("last_ts", "first_ts", "s0", "s1", "s2", "bursts", "hours")

    def __init__(self) -> None:
        self.last_ts: float | None = None
        self.first_ts: float | None = None
        self.s0 = self.s1 = self.s2 = 0.0  # decayed count, sum and sum of squares of in-session gaps
        self.bursts = DecayedRate()
        self.hours = LazyHistogram(24)


def _cv(s0: float, s1: float, s2: float) -> float:
    mean = s1 / s0
    var = max(0.0, s2 / s0 - mean * mean)
    return math.sqrt(var) / mean if mean > 0 else 0.0


def miller_madow(entropy: float, nonempty: int, n: float, bins: int = 24) -> float:
    """Normalised entropy in [0, 1] with the Miller-Madow bias correction.

    H_MM = H_plugin + (m - 1) / (2n), m = non-empty bins, n = count (Miller 1955); without it a
    round-the-clock script seen 40 times looks far less uniform than it is.
    """
    return min(1.0, (entropy + (nonempty - 1) / (2 * n)) / math.log(bins)) if n > 0 else 0.0


def _profile_entropy(counts: Sequence[float]) -> tuple[float, float]:
    """(Miller-Madow normalised entropy, count) of an hour histogram given as counts."""
    n = sum(counts)
    if n <= 0:
        return 0.0, 0.0
    h = -sum(c / n * math.log(c / n) for c in counts if c > 0)
    return miller_madow(h, sum(1 for c in counts if c > 0), n), n


class TimingSignal(Signal):
    """Regular pacing (+ up to 1.5), bursts (+ up to 1), round-the-clock activity (+ up to 1.5); total <= 2."""

    name = "timing"
    group = "automation"
    summary_size = 5 + 24

    def new_state(self) -> TimingState:
        return TimingState()

    def observe(self, state: TimingState, d: Digest, decay: float, ctx: Context) -> float:
        if state.last_ts is not None:
            gap = d.ts - state.last_ts
            if gap <= SESSION_GAP:
                state.s0 = state.s0 * decay + 1.0
                state.s1 = state.s1 * decay + gap
                state.s2 = state.s2 * decay + gap * gap
            state.bursts.add(gap < BURST_GAP, decay)
        else:
            state.first_ts = d.ts
        state.last_ts = d.ts
        hours = state.hours
        hours.add(int(d.ts // 3600) % 24, decay)
        n = hours.total
        entropy = miller_madow(hours.entropy(), hours.nonempty, n)
        return self._total(*self._parts(state.s0, state.s1, state.s2, state.bursts.hits, state.bursts.n, entropy, n))

    @staticmethod
    def _parts(
        s0: float, s1: float, s2: float, bursts: float, n_bursts: float, entropy: float, n_hours: float
    ) -> tuple[float, float, float, float]:
        cv = _cv(s0, s1, s2) if s0 >= MIN_GAPS else -1.0
        regular = 0.0
        if cv >= 0:
            regular = 1.5 * (0.5 - cv) / 0.5 if cv < 0.5 else -0.5 * min(1.0, cv - 1.0) if cv > 1.0 else 0.0
        burst = clip(rate_llr(bursts, n_bursts, 0.02), 0.0, 1.0)
        clock = 0.0
        if n_hours >= MIN_HOURS:
            clock = 1.5 * (entropy - 0.9) / 0.1 if entropy > 0.9 else -0.5 if entropy < 0.75 else 0.0
        return regular, burst, clock, cv

    @staticmethod
    def _total(regular: float, burst: float, clock: float, cv: float) -> float:
        return clip(regular + burst + clock, 1.0, 2.0)

    def summary(self, state: TimingState) -> Sequence[float]:
        return (state.s0, state.s1, state.s2, state.bursts.hits, state.bursts.n, *state.hours.counts())

    def _pooled_parts(self, summary: Sequence[float]) -> tuple[tuple[float, float, float, float], float]:
        entropy, n = _profile_entropy(summary[5:])
        s0, s1, s2, bursts, n_bursts = summary[:5]
        return self._parts(s0, s1, s2, bursts, n_bursts, entropy, n), entropy

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        return self._total(*self._pooled_parts(summary)[0])

    def _describe(self, parts: tuple[float, float, float, float], entropy: float) -> str:
        regular, burst, clock, cv = parts
        out = []
        if regular > 0:
            out.append(f"regular pacing (gap CV {cv:.2f})")
        if burst > 0:
            out.append("sub-second bursts")
        if clock > 0:
            out.append(f"active around the clock (hour entropy {entropy:.2f})")
        return "timing: " + (", ".join(out) or "human-like")

    def explain(self, state: TimingState) -> str:
        return self.explain_pooled(self.summary(state), 1)

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        parts, entropy = self._pooled_parts(summary)
        return self._describe(parts, entropy)

    def links(self, state: TimingState) -> Iterable[Link]:
        if state.first_ts is not None:
            yield ("start", int(state.first_ts // 3600))  # accounts that began within the same hour


register(TimingSignal)
