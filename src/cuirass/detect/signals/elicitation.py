"""Requests for chain of thought, rubric grading and checkable final answers: what distillers ask for."""

from __future__ import annotations

from collections.abc import Sequence

from cuirass.detect import digest as D
from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import Context, DecayedRate, RateSignal, register

TASK_WORDS = 12  # a prompt shorter than this holds no task of its own
FOLLOW_UP = 0.3  # weight of a reasoning request about an answer already given
OPEN_THREADS = 16  # recent reasoning requests remembered per account, to notice follow-ups


class ReasoningState(DecayedRate):
    __slots__ = ("open",)

    def __init__(self) -> None:
        super().__init__()
        self.open: dict[int, None] = {}  # conversations opened by a reasoning request, not yet followed up


class ReasoningSignal(RateSignal):
    """Share of prompts asking for step-by-step or internal reasoning (phrases.REASONING).

    A harvester sends the task and the reasoning instruction together and takes the answer; a
    learner asks "explain step by step?" after an answer, or discusses the explanation it got.
    Reasoning requests in a follow-up (or without a task) count FOLLOW_UP of a hit, and a
    reasoning request whose conversation the account later continues is re-counted so (its
    weight is taken back, ignoring the decay in between). p0: ~0.5% of real user turns in
    ShareGPT match (61k turns); 0.6% used.
    """

    name = "reasoning"
    p0 = 0.006
    rare_trait = True
    lo = 1.0
    hi = 4.0

    def new_state(self) -> ReasoningState:
        return ReasoningState()

    def observe(self, state: ReasoningState, d: Digest, decay: float, ctx: Context) -> float:  # type: ignore[override]
        if d.flags & D.FOLLOWUP and d.thread in state.open:
            del state.open[d.thread]
            state.hits = max(0.0, state.hits - (1.0 - FOLLOW_UP))
        evidence = super().observe(state, d, decay, ctx)
        if d.flags & D.REASONING_ASK and not d.flags & D.FOLLOWUP and d.words >= TASK_WORDS and d.thread:
            state.open[d.thread] = None
            if len(state.open) > OPEN_THREADS:
                del state.open[next(iter(state.open))]
        return evidence

    def summary(self, state: ReasoningState) -> Sequence[float]:  # type: ignore[override]
        return (state.hits, state.n)

    def hit(self, d: Digest) -> float | None:
        if d.flags & D.SHORT:
            return None
        if not d.flags & D.REASONING_ASK:
            return 0.0
        return FOLLOW_UP if d.flags & D.FOLLOWUP or d.words < TASK_WORDS else 1.0

    def describe(self, share: float, n: float, example: str | None) -> str:
        e_g = f" (e.g. '{example}')" if example else ""
        return f"asks for step-by-step reasoning in {share:.0%} of {n:.0f} recent prompts{e_g}"


class RubricSignal(RateSignal):
    """Share of prompts asking to grade or compare answers (phrases.RUBRIC). ShareGPT: ~0.07%."""

    name = "rubric"
    p0 = 0.002
    rare_trait = True
    lo = 0.5
    hi = 3.0

    def hit(self, d: Digest) -> float | None:
        return None if d.flags & D.SHORT else float(bool(d.flags & D.RUBRIC_ASK))

    def describe(self, share: float, n: float, example: str | None) -> str:
        return f"asks to grade answers against a rubric in {share:.0%} of {n:.0f} recent prompts"


class AnswerFormatSignal(RateSignal):
    """Share of prompts demanding a checkable final answer (phrases.ANSWER). ShareGPT: ~0.03%.

    Harvested answers are filtered by answer checkers, which need the result in a fixed place.
    """

    name = "answer_format"
    p0 = 0.002
    rare_trait = True
    lo = 0.5
    hi = 2.0

    def hit(self, d: Digest) -> float | None:
        return None if d.flags & D.SHORT else float(bool(d.flags & D.ANSWER_ASK))

    def describe(self, share: float, n: float, example: str | None) -> str:
        return f"demands a checkable final answer in {share:.0%} of {n:.0f} recent prompts"


register(ReasoningSignal)
register(RubricSignal)
register(AnswerFormatSignal)
