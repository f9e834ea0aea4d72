"""One choice from start to finish: take sampled tokens, release text deltas, decide why it ended.

    finish_reason = "stop"    on an end-of-sequence token or a stop string
                  = "length"  when max_tokens (or the model's context) is used up
                  = None      cancelled (the client hung up): the choice just ends

The tokens come from `cuirass.engine.batch`, which decodes every running choice together; its `run_choice`
runs one choice alone in the calling thread (tests, tools).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence

from cuirass.engine.decode import TextDeltas
from cuirass.engine.loader import LoadedModel
from cuirass.engine.params import EngineRequest
from cuirass.engine.sampling import Processor


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str
    finish_reason: str | None  # None: cancelled
    token_ids: tuple[int, ...]  # every generated token, including an eos or the tokens of a stop string


class ChoiceRun:
    """The text side of one choice: `push` each sampled token; True once the choice is over."""

    def __init__(
        self,
        lm: LoadedModel,
        req: EngineRequest,
        index: int,
        processors: Sequence[Processor],
        cancel: threading.Event,
        emit: Callable[[int, str], None] | None = None,
    ) -> None:
        self.lm, self.req, self.index = lm, req, index
        self.processors = list(processors)
        self.cancel = cancel
        self.emit = emit
        self.deltas = TextDeltas(lm.tokenizer, req.params.stop)
        self.made: list[int] = []
        self.finish: str | None = None

    @property
    def seed(self) -> int:
        return self.req.params.seed + self.index

    def push(self, tok: int) -> bool:
        self.made.append(tok)
        if tok in self.lm.eos_ids:
            self.finish = "stop"
            return True
        delta = self.deltas.push(tok)
        if delta and self.emit is not None:
            self.emit(self.index, delta)
        if self.deltas.stopped:
            self.finish = "stop"
            return True
        if len(self.made) >= self.req.params.max_tokens:
            self.finish = "length"
            return True
        return False

    def result(self, cancelled: bool = False) -> Choice:
        """The finished choice; the text still held back (a possible stop string) is released now."""
        if cancelled:
            return Choice(self.index, self.deltas.answer, None, tuple(self.made))
        rest = self.deltas.finish()
        if rest and self.emit is not None:
            self.emit(self.index, rest)
        return Choice(self.index, self.deltas.answer, self.finish or "length", tuple(self.made))
