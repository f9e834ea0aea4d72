"""The interface every response defense implements, and the registry that names them.

A defense that rewrites text receives the whole answer and returns the new one. The gateway calls it
identically for streaming and non-streaming responses (a streamed answer to a flagged account is
collected, transformed, then re-streamed), so both give the same text. Transforms must be deterministic
given (key, account, prompt, text): an attacker who repeats a prompt, or compares a flagged account with
a clean one, learns as little as possible.

A defense whose work has a side effect beyond the answer (the canary defense records each planting in
the ledger) queues it on the hot path and carries it out in `flush`, which the gateway calls from a
background thread every refresh and once at shutdown.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from cuirass.actions import TEXT_ACTIONS
from cuirass.registry import Registry

if TYPE_CHECKING:
    import sqlalchemy as sa


@dataclasses.dataclass(frozen=True, slots=True)
class DefenseContext:
    account: str
    cohort: str  # the account's cohort (regular, or a honeypot cohort for suspects)
    prompt: str  # all message text of the request, for deterministic keyed choices
    endpoint: str
    model: str  # public model name
    key: bytes = dataclasses.field(repr=False)  # this defense's key for the cohort; never logged

    def __repr__(self) -> str:
        return f"DefenseContext(account={self.account!r}, cohort={self.cohort!r}, model={self.model!r})"


class Defense(abc.ABC):
    """What every defense has: a `name` (one of cuirass.actions), its options from the policy, and a hook
    for the side effects it deferred off the hot path."""

    name: ClassVar[str]

    def __init__(self, **options: Any) -> None:
        self.options = options

    def flush(self, engine: sa.Engine) -> int:
        """Carry out the side effects queued since the last call (e.g. write ledger rows); returns how many
        records were written. Called from a background thread. On failure the records stay queued for the
        next call and the error propagates. By default a defense defers nothing."""
        return 0


class TextDefense(Defense):
    """A defense that rewrites the answer text. Subclasses set `name` and register with `@register`."""

    @abc.abstractmethod
    def transform(self, text: str, ctx: DefenseContext) -> str:
        """The answer the client receives instead of `text`."""


DEFENSES: Registry[type[TextDefense]] = Registry("defense", TEXT_ACTIONS)
register = DEFENSES.register  # class decorator: make a text defense available by its name
