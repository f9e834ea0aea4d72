"""Parameter probing: log-probabilities, logit bias, many samples, greedy decoding, max_tokens sweeps.

Logprobs and logit_bias expose the teacher's distribution (soft labels, or token-by-token
extraction), n > 1 buys several samples per prompt, temperature 0 asks for the mode, and a
sweep of max_tokens maps how answers are truncated. Ordinary chat traffic rarely does any of
these; applications often pin temperature 0, so that one weighs little.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cuirass.detect import digest as D
from cuirass.detect.digest import Digest
from cuirass.detect.evidence import clip, rate_llr
from cuirass.detect.signals.base import Context, DecayedRate, Signal, rate_consistency, rate_consistency_many, register

MAX_TOKEN_VALUES = 16  # distinct max_tokens values remembered per account


class ProbeState:
    __slots__ = ("distribution", "multi", "greedy", "max_tokens")

    def __init__(self) -> None:
        self.distribution = DecayedRate()  # logprobs / top_logprobs / echo / logit_bias
        self.multi = DecayedRate()  # n > 1
        self.greedy = DecayedRate()  # temperature 0
        self.max_tokens: dict[int, int] = {}


# (attribute, base rate among ordinary requests, upper censoring bound)
# Each is also how some honest clients are configured (a confidence score from logprobs, several
# drafts with n > 1, greedy decoding), so each is censored low; together they can say more.
_RATES = (("distribution", 0.003, 1.5), ("multi", 0.01, 1.0), ("greedy", 0.15, 0.5))


class ProbingSignal(Signal):
    """Evidence = censored GLRs of the three rates + a bonus for sweeping max_tokens; total in [0, 2.5]."""

    name = "probing"
    summary_size = 7

    def new_state(self) -> ProbeState:
        return ProbeState()

    def observe(self, state: ProbeState, d: Digest, decay: float, ctx: Context) -> float:
        flags = d.flags
        state.distribution.add(bool(flags & (D.LOGPROBS | D.LOGIT_BIAS)), decay)
        state.multi.add(bool(flags & D.MULTI_N), decay)
        state.greedy.add(bool(flags & D.TEMP_ZERO), decay)
        if d.max_tokens is not None:
            seen = state.max_tokens
            if d.max_tokens in seen or len(seen) < MAX_TOKEN_VALUES:
                seen[d.max_tokens] = seen.get(d.max_tokens, 0) + 1
        if not state.distribution.hits and not state.multi.hits and not state.greedy.hits and len(state.max_tokens) < 6:
            return 0.0  # the common case, without building a summary
        return self._evidence(self.summary(state))

    def summary(self, state: ProbeState) -> Sequence[float]:
        sweep = len(state.max_tokens) if state.distribution.n >= 8 else 0
        return (
            state.distribution.hits,
            state.distribution.n,
            state.multi.hits,
            state.multi.n,
            state.greedy.hits,
            state.greedy.n,
            float(sweep),
        )

    @staticmethod
    def _sweep(values: float) -> float:
        # Applications pin one max_tokens, scripts run with a few; six or more distinct values is a sweep.
        return min(1.5, 0.5 * (values - 5.0)) if values >= 6 else 0.0

    def _evidence(self, s: Sequence[float], members: int = 1) -> float:
        total = 0.0
        for i, (_, p0, hi) in enumerate(_RATES):
            if s[2 * i] > 0:  # no hit: the censored evidence is 0
                total += clip(rate_llr(s[2 * i], s[2 * i + 1], p0), 0.0, hi)
        return min(2.5, total + self._sweep(s[6] / members))

    def pooled_evidence(self, summary: Sequence[float], members: int) -> float:
        return self._evidence(summary, max(members, 1))

    def _describe(self, s: Sequence[float], members: int = 1) -> str:
        parts = []
        for i, (attr, p0, _) in enumerate(_RATES):
            hits, n = s[2 * i], s[2 * i + 1]
            if n > 0 and hits / n > 2 * p0:
                label = {"distribution": "logprobs/logit_bias", "multi": "n>1", "greedy": "temperature 0"}[attr]
                parts.append(f"{label} in {hits / n:.0%}")
        if self._sweep(s[6] / members):
            parts.append(f"{s[6] / members:.0f} different max_tokens values")
        return "probes decoding parameters: " + (", ".join(parts) or "rarely") + f" of {s[1]:.0f} recent requests"

    def consistency(self, member: Sequence[float], pooled: Sequence[float]) -> float:
        return sum(
            clip(rate_consistency(member[2 * i], member[2 * i + 1], pooled[2 * i], pooled[2 * i + 1], p0), 0.5, hi)
            for i, (_, p0, hi) in enumerate(_RATES)
        )

    def consistency_many(self, members: np.ndarray, pooled: Sequence[float]) -> np.ndarray:
        total = np.zeros(len(members))
        for i, (_, p0, hi) in enumerate(_RATES):
            total += rate_consistency_many(
                members[:, 2 * i], members[:, 2 * i + 1], pooled[2 * i], pooled[2 * i + 1], p0, 0.5, hi
            )
        return total

    def explain(self, state: ProbeState) -> str:
        return self._describe(self.summary(state))

    def explain_pooled(self, summary: Sequence[float], members: int) -> str:
        return self._describe(summary, max(members, 1))


register(ProbingSignal)
