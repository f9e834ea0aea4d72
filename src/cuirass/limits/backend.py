"""Where the counters live: the interface every backend implements, and how settings choose one."""

from __future__ import annotations

from typing import Protocol

from cuirass.limits.gcra import State


class Backend(Protocol):
    """Applies the rule of gcra.py atomically to one key's state, wherever that state is kept.

    A backend may fail (raise anything, or hang): the Limiter bounds each call by `limits.backend_timeout_s`
    and then decides by `limits.on_backend_down`. `name` labels metrics and log lines; `where` says where
    the counters are, without secrets."""

    name: str
    where: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None) -> tuple[bool, State, int]:
        """Admit one request or not (gcra.admit); returns the decision, the state after it, and `now` (us)."""
        ...

    async def charge(self, key_id: str, cost: int) -> None:
        """Add `cost` microseconds of tokens to the key's token tat (gcra.charge)."""
        ...
