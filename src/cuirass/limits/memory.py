"""Counters in this process: the default for one worker, and the fastest (no I/O, nothing to fail)."""

from __future__ import annotations

import time
from collections.abc import Callable

from cuirass.limits import gcra
from cuirass.limits.gcra import State


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryBackend:
    """A dict of key -> State. Bounded: past `max_keys`, keys whose buckets are full again are dropped (a
    dropped key is a full bucket, so nothing changes); if all are busy, the map is cleared, which only ever
    errs towards letting requests through."""

    name = "memory"
    where = "this process"

    def __init__(self, max_keys: int = 1_000_000, clock: Callable[[], int] = _monotonic_us) -> None:
        self._states: dict[str, State] = {}
        self._max_keys = max_keys
        self._clock = clock

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None) -> tuple[bool, State, int]:
        now = self._clock()
        ok, state = gcra.admit(self._states.get(key_id), now, rpm, tpm)
        if ok:
            self._put(key_id, state, now)
        return ok, state, now

    async def charge(self, key_id: str, cost: int) -> None:
        now = self._clock()
        self._put(key_id, gcra.charge(self._states.get(key_id), now, cost), now)

    def _put(self, key_id: str, state: State, now: int) -> None:
        if key_id not in self._states and len(self._states) >= self._max_keys:
            self._states = {k: s for k, s in self._states.items() if max(s) > now}
            if len(self._states) >= self._max_keys:
                self._states.clear()
        self._states[key_id] = state
