"""The limiter the gateway holds: a backend, bounded in time, with the configured answer when it is down.

A backend that fails or does not answer within `limits.backend_timeout_s` is "down": the request is then
admitted (`on_backend_down: open`) or refused (`closed`, which the gateway answers with a 503), never left
waiting and never failed with a 500. For the next RETRY_S the backend is not asked at all, so a dead Redis
costs one timeout per second per worker rather than one per request; the first call after that tries it
again, and limits apply again as soon as it answers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from cuirass.config import ConfigError, Settings
from cuirass.limits.backend import Backend
from cuirass.limits.decision import UNLIMITED, Decision, decide
from cuirass.limits.gcra import token_cost
from cuirass.limits.memory import MemoryBackend

RETRY_S = 1.0  # after a failure, how long requests are decided by the mode without asking the backend

Mode = Literal["open", "closed"]
OnDown = Callable[[Backend, Mode, BaseException | None], None]  # a request decided by the mode; the error
OnHealth = Callable[[Backend, bool], None]  # the backend answers again (True) or has just failed (False)


def _ignore(*_: object) -> None:
    return None


class Limiter:
    def __init__(
        self,
        backend: Backend,
        *,
        on_backend_down: Mode = "open",
        timeout_s: float = 0.25,
        on_down: OnDown = _ignore,
        on_health: OnHealth = _ignore,
    ) -> None:
        self.backend = backend
        self.mode: Mode = on_backend_down
        self.timeout_s = timeout_s
        self._on_down = on_down
        self._on_health = on_health
        self._up: bool | None = None
        self._skip_until = 0.0
        self._last_error: BaseException | None = None
        self._charges: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.backend.start()

    async def close(self) -> None:
        """Let pending charges land (each is bounded in time), then close the backend."""
        if self._charges:
            await asyncio.gather(*self._charges, return_exceptions=True)
        await self.backend.close()

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None) -> Decision:
        """Admit one request of this key or not, with the x-ratelimit-* headers to send either way."""
        if rpm is None and tpm is None:
            return UNLIMITED
        if time.monotonic() < self._skip_until:
            return self._down(self._last_error)
        try:
            async with asyncio.timeout(self.timeout_s):
                ok, state, now = await self.backend.acquire(key_id, rpm, tpm)
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises, the request gets the mode's answer
            self._failed(exc)
            return self._down(exc)
        self._healthy()
        return decide(ok, state, now, rpm, tpm)

    async def charge(self, key_id: str, tokens: int, tpm: int | None) -> None:
        """Debit the tokens a finished request used (lost, and logged, if the backend is down)."""
        if tpm is None or tokens <= 0 or time.monotonic() < self._skip_until:
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.backend.charge(key_id, token_cost(tokens, tpm))
        except Exception as exc:  # noqa: BLE001 - a lost charge must not fail the request that is already answered
            self._failed(exc)
            return
        self._healthy()

    def charge_soon(self, key_id: str, tokens: int, tpm: int | None) -> None:
        """`charge` in the background, for callers that are not coroutines (the request is done by then)."""
        if tpm is None or tokens <= 0:
            return
        task = asyncio.get_running_loop().create_task(self.charge(key_id, tokens, tpm))
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)

    def _down(self, exc: BaseException | None) -> Decision:
        self._on_down(self.backend, self.mode, exc)
        if self.mode == "open":
            return Decision(True, backend_down=True)
        return Decision(False, {"retry-after": str(math.ceil(RETRY_S))}, backend_down=True)

    def _failed(self, exc: BaseException) -> None:
        self._last_error = exc
        self._skip_until = time.monotonic() + RETRY_S
        if self._up is not False:
            self._up = False
            self._on_health(self.backend, False)

    def _healthy(self) -> None:
        if self._up is not True:
            self._up = True
            self._on_health(self.backend, True)


def open_limiter(settings: Settings, on_down: OnDown = _ignore, on_health: OnHealth = _ignore) -> Limiter:
    """The limiter `limits.backend` names: None is this machine (the process itself for one worker, a SQLite
    file under the data directory for several), `redis://host:port/db` is Redis."""
    cfg = settings.limits
    url = cfg.backend
    backend: Backend
    if url is None:
        if settings.server.workers == 1:
            backend = MemoryBackend()
        else:
            from cuirass.limits.sqlite import SqliteBackend

            backend = SqliteBackend(Path(settings.data_dir) / "limits.db", cfg.backend_timeout_s)
    elif url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        from cuirass.limits.redis import RedisBackend

        backend = RedisBackend(url, cfg.backend_timeout_s)
    else:
        raise ConfigError("limits.backend must be a Redis URL (redis://host:port/db) or unset (this machine)")
    return Limiter(
        backend,
        on_backend_down=cfg.on_backend_down,
        timeout_s=cfg.backend_timeout_s,
        on_down=on_down,
        on_health=on_health,
    )
