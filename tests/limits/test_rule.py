"""The limit rule, without a gateway: the three backends decide alike, and none admits more than the limit.

The backends run on a clock the test drives (Redis's script takes `now` from the caller when given one), so a
hostile sequence of requests, charges and pauses gives the same answers from the process, the SQLite file and
Redis, and the admitted requests of any stretch of time stay within limit + elapsed * limit / 60 s.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cuirass.limits import Decision, Limiter
from cuirass.limits.limiter import RETRY_S
from cuirass.limits.memory import MemoryBackend
from cuirass.limits.redis import RedisBackend
from cuirass.limits.sqlite import SqliteBackend
from tests.conftest import free_port
from tests.limits.conftest import RedisServer

T0 = 1_770_000_000_000_000  # microseconds, about now


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


# One step: (pause in microseconds, then either a request or a charge of some tokens).
steps = st.lists(
    st.tuples(
        st.one_of(st.just(0), st.integers(0, 5_000_000), st.integers(0, 120_000_000)),
        st.one_of(st.just(None), st.integers(1, 5_000)),
    ),
    min_size=1,
    max_size=40,
)
limits = st.tuples(st.one_of(st.none(), st.integers(1, 50)), st.one_of(st.none(), st.integers(1, 10_000)))
_keys = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=limits, script=steps)
def test_backends_agree_and_stay_within_the_limit(
    limit: tuple[int | None, int | None],
    script: list[tuple[int, int | None]],
    loop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    rpm, tpm = limit
    clock = Clock()
    backends = [
        MemoryBackend(clock=clock),
        SqliteBackend(tmp_path / "limits.db", 5.0, clock=clock),
        RedisBackend(redis_server.url, 5.0, prefix=f"test:{time.time_ns()}:", clock=clock),
    ]
    limiters = [Limiter(b, timeout_s=5.0) for b in backends]
    key = f"k{next(_keys)}"

    async def run() -> list[tuple[int, list[Decision]]]:
        for lim in limiters:
            await lim.start()
        seen = []
        try:
            for pause, tokens in script:
                clock.now += pause
                if tokens is None:
                    seen.append((clock.now, [await lim.acquire(key, rpm, tpm) for lim in limiters]))
                else:
                    for lim in limiters:
                        await lim.charge(key, tokens, tpm)
        finally:
            for lim in limiters:
                await lim.close()
        return seen

    seen = loop.run_until_complete(run())
    for _, (memory, sqlite, redis) in seen:
        assert memory == sqlite == redis
        assert not memory.backend_down
        if not memory.allowed:
            assert int(memory.headers["retry-after"]) >= 1 and memory.exceeded in ("requests", "tokens")
    if rpm is not None:
        admitted = [t for t, (d, *_) in seen if d.allowed]
        for i, start in enumerate(admitted):  # every stretch [start, end] of admitted requests
            for j in range(i, len(admitted)):
                elapsed_s = (admitted[j] - start) / 1e6
                assert j - i + 1 <= rpm + elapsed_s * rpm / 60


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_backend_that_hangs_is_answered_by_the_mode_in_time(mode: str, loop: asyncio.AbstractEventLoop) -> None:
    """A Redis that accepts connections and never answers (a stopped or partitioned server): each decision
    comes within the timeout, and the next second's decisions do not even wait for it."""
    port = free_port()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", port))
        silent.listen(64)  # connections complete in the backlog; nothing is ever read or written
        downs: list[str] = []
        lim = Limiter(
            RedisBackend(f"redis://127.0.0.1:{port}/0", 0.2),
            on_backend_down=mode,  # type: ignore[arg-type]
            timeout_s=0.2,
            on_down=lambda b, m, exc: downs.append(type(exc).__name__),
        )

        async def run() -> list[tuple[Decision, float]]:
            await lim.start()
            out = []
            for _ in range(3):
                t = time.monotonic()
                out.append((await lim.acquire("k", 10, None), time.monotonic() - t))
            await lim.close()
            return out

        out = loop.run_until_complete(run())
    assert out[0][1] < 0.5 and all(took < 0.05 for _, took in out[1:])
    for d, _ in out:
        assert d.backend_down and d.allowed == (mode == "open")
        if mode == "closed":
            assert d.headers["retry-after"] == "1"
    assert len(downs) == 3 and downs[0] == "TimeoutError"


def test_first_request_sees_a_full_bucket(loop: asyncio.AbstractEventLoop) -> None:
    lim = Limiter(MemoryBackend())
    d = loop.run_until_complete(lim.acquire("k", 3, 100))
    assert d.allowed
    assert d.headers["x-ratelimit-limit-requests"] == "3"
    assert d.headers["x-ratelimit-remaining-requests"] == "2"
    assert d.headers["x-ratelimit-remaining-tokens"] == "100"
    assert d.headers["x-ratelimit-reset-requests"] == "20.000s"


def test_a_locked_sqlite_file_is_answered_by_the_mode_then_limits_return(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    """Another process holds the limits file's write lock for longer than the timeout (a stuck worker, a
    backup tool): requests are refused in time (closed mode), and counted again once it lets go."""
    path = tmp_path / "limits.db"
    lim = Limiter(SqliteBackend(path, 0.1), on_backend_down="closed", timeout_s=0.1)
    assert loop.run_until_complete(lim.acquire("k", 2, None)).allowed  # the first of 2; creates the file
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    t = time.monotonic()
    locked = loop.run_until_complete(lim.acquire("k", 2, None))
    assert time.monotonic() - t < 0.5
    assert locked.backend_down and not locked.allowed and locked.headers == {"retry-after": "1"}
    time.sleep(0.2)  # still locked: the statement behind that refusal gives up too
    holder.execute("ROLLBACK")
    holder.close()
    time.sleep(RETRY_S + 0.1)
    second, third = (loop.run_until_complete(lim.acquire("k", 2, None)) for _ in range(2))
    assert second.allowed and not second.backend_down
    assert not third.allowed and not third.backend_down and third.exceeded == "requests"
    loop.run_until_complete(lim.close())
