"""`canary`: plant a cohort-specific synthetic fact in a small keyed fraction of responses.

Whether a response gets a canary, and which of the cohort's `pool` facts, are keyed functions of the prompt:

    u     = HMAC-SHA256(key, "canary-rate|" + prompt)[:8] / 2**64      plant iff u < rate
    index = HMAC-SHA256(key, "canary-pick|" + prompt)[:8] mod pool

so a repeated prompt always gets the same treatment, and each fact recurs across many prompts of the
cohort (repetition is what makes a student memorise it). The fact is woven in as a one-sentence aside at
the end of a plain paragraph, never inside code and never in or after the final answer (`marks.answer`),
so answer checkers and tests see the same answer. Each planting becomes a `CanaryRecord`; `transform`
queues it (O(1)) and `flush`, called by the gateway off the hot path, writes the queue to the `CanaryLedger`.

Options (policy `options.canary`): rate (default 0.05), pool (facts per cohort, default 16).
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cuirass import linear
from cuirass.marks.answer import find_final_answer
from cuirass.marks.canary import CanaryFact, CanaryGenerator
from cuirass.marks.canary_ledger import CanaryLedger, CanaryRecord, prompt_hash
from cuirass.respond.base import DefenseContext, TextDefense, register
from cuirass.respond.perturb.detect import content_type
from cuirass.respond.perturb.prose import structured_paragraph

if TYPE_CHECKING:
    import sqlalchemy as sa

_FENCE = linear.compile(r"^[ \t]*```.*?(?:^[ \t]*```[^\n]*$|\Z)", linear.MULTILINE | linear.DOTALL)
_PARAGRAPH = linear.compile(r"[^\n]+(?:\n[^\n]+)*")
_SENTENCE_END = linear.compile(r"[.!?]", after=r" +[A-Z\"'(]")


def _unit(key: bytes, label: str, prompt: str) -> int:
    return int.from_bytes(hmac.new(key, f"{label}|{prompt}".encode(), hashlib.sha256).digest()[:8], "big")


def weave(text: str, aside: str) -> str | None:
    """`text` with `aside` added where a reader would take it for a natural remark, or None if nowhere fits.

    Places, first that fits: the end of the first plain paragraph that ends a sentence; after the first
    sentence of a plain paragraph; a line of its own just before the final-answer line. Only text outside
    code fences and, in a math answer, before the final answer is eligible, so answers stay put.
    """
    final = find_final_answer(text)
    answers = final is not None and (final.convention != "last_number" or content_type(text) == "math")
    limit = final.protected_start if final is not None and answers else len(text)
    fenced = [m.span() for m in _FENCE.finditer(text)]  # sorted, disjoint
    fence_starts = [a for a, _ in fenced]

    def in_fence(pos: int) -> bool:
        k = bisect.bisect_right(fence_starts, pos) - 1
        return k >= 0 and pos < fenced[k][1]

    plain = [
        m
        for m in _PARAGRAPH.finditer(text, 0, limit)
        if not in_fence(m.start()) and not structured_paragraph(text, m.start(), m.end())
    ]
    for m in plain:
        body = m.group().rstrip()
        if body.endswith((".", "!", "?")) and m.start() + len(body) <= limit:
            end = m.start() + len(body)
            return text[:end] + " " + aside + text[end:]
    for m in plain:
        s = _SENTENCE_END.search(text, m.start(), m.end())
        if s is not None and s.end() < limit:
            return text[: s.end()] + " " + aside + text[s.end() :]
    at = final.protected_start if final is not None and answers else 0
    if at > 0 and text[at - 1] == "\n" and not in_fence(at):
        return text[:at] + aside + "\n" + text[at:]
    return None


@register
class Canary(TextDefense):
    name = "canary"

    def __init__(
        self,
        *,
        rate: float = 0.05,
        pool: int = 16,
        on_plant: Callable[[CanaryRecord], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(rate=rate, pool=pool, **options)
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError("canary: rate must be within [0, 1]")
        if int(pool) < 1:
            raise ValueError("canary: pool must be >= 1")
        self.rate = float(rate)
        self.pool = int(pool)
        self.on_plant = on_plant  # e.g. a writer's submit; default: queue for `drain`
        self.pending: collections.deque[CanaryRecord] = collections.deque()
        self._ledger: CanaryLedger | None = None

    def selected(self, key: bytes, prompt: str) -> bool:
        """Whether a response to `prompt` gets a canary under this cohort key."""
        return _unit(key, "canary-rate", prompt) < self.rate * 2**64

    def choose(self, key: bytes, cohort: str, prompt: str) -> CanaryFact:
        """The cohort fact a response to `prompt` would carry."""
        return CanaryGenerator(key, cohort).fact(_unit(key, "canary-pick", prompt) % self.pool)

    def plant(self, text: str, ctx: DefenseContext, now: float | None = None) -> tuple[str, CanaryRecord | None]:
        """The response with its canary (if selected and a place fits) and the record to store."""
        if not self.selected(ctx.key, ctx.prompt):
            return text, None
        fact = self.choose(ctx.key, ctx.cohort, ctx.prompt)
        woven = weave(text, fact.text)
        if woven is None:
            return text, None
        record = CanaryRecord(
            ts=time.time() if now is None else now,
            canary_id=fact.canary_id,
            cohort=ctx.cohort,
            account=ctx.account,
            prompt_hash=prompt_hash(ctx.prompt),
            kind=fact.kind,
            planted_text=fact.text,
            probe=fact.probe,
            answer=fact.answer,
        )
        return woven, record

    def transform(self, text: str, ctx: DefenseContext) -> str:
        woven, record = self.plant(text, ctx)
        if record is not None:
            if self.on_plant is not None:
                self.on_plant(record)
            else:
                self.pending.append(record)
        return woven

    def drain(self) -> list[CanaryRecord]:
        """Take every queued record (`flush` writes them to the ledger)."""
        out = []
        while self.pending:
            out.append(self.pending.popleft())
        return out

    def flush(self, engine: sa.Engine) -> int:
        """Write the queued plantings to the canary ledger; on failure they are queued again, in order."""
        rows = self.drain()
        if not rows:
            return 0
        try:
            if self._ledger is None or self._ledger.engine is not engine:
                self._ledger = CanaryLedger(engine)
            return self._ledger.record(rows)
        except Exception:
            self.pending.extendleft(reversed(rows))  # keep them for the next round rather than lose them
            raise
