"""One choice from start to finish: sample tokens, release text deltas, decide why it ended.

    finish_reason = "stop"    on an end-of-sequence token or a stop string
                  = "length"  when max_tokens (or the model's context) is used up
Cancellation (the client hung up) is checked before every token; a cancelled choice just ends.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence

from cuirass.engine.decode import TextDeltas
from cuirass.engine.loader import LoadedModel
from cuirass.engine.params import EngineRequest
from cuirass.engine.sampling import Processor, tokens


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str
    finish_reason: str | None  # None: cancelled
    token_ids: tuple[int, ...]  # every generated token, including an eos or the tokens of a stop string


def run_choice(lm: LoadedModel, req: EngineRequest, index: int, processors: Sequence[Processor],
               cancel: threading.Event, emit: Callable[[int, str], None] | None = None) -> Choice:
    """Generate choice `index` (seed + index); `emit(index, delta)` receives text as it settles."""
    deltas = TextDeltas(lm.tokenizer, req.params.stop)
    finish: str | None = "length"
    made: list[int] = []
    for tok in tokens(lm, req.prompt_ids, req.params, req.params.seed + index, processors):
        if cancel.is_set():
            finish = None
            break
        made.append(tok)
        if tok in lm.eos_ids:
            finish = "stop"
            break
        delta = deltas.push(tok)
        if delta and emit is not None:
            emit(index, delta)
        if deltas.stopped:
            finish = "stop"
            break
    if finish is not None:
        rest = deltas.finish()
        if rest and emit is not None:
            emit(index, rest)
    return Choice(index, deltas.answer, finish, tuple(made))
