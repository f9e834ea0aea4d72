"""The event bus on NATS JetStream (nats-py): one stream, one subject per partition of the accounts.

    events.bus = "nats://127.0.0.1:4222"   ->  stream CUIRASS_EVENTS, subjects cuirass.events.<p>
    events.bus_stream = "OTHER"             ->  stream OTHER, subjects cuirass.OTHER.<p> (`subject_prefix`)

An event is published to `cuirass.events.<p>`, p = `partition_of(account, partitions)`, with its request id
as `Nats-Msg-Id`: the stream drops a second copy inside its duplicate window, so a batch retried after a
lost acknowledgement, or a spool replayed after a crash, is stored once. The stream keeps the events of one
account in publish order within its partition, which is what the detector shards read in
(`services.shards`), and what the archive writer (`bus.archive`) stores.

nats-py is asyncio-only; the gateway's event writer and the shards are threads. `Connection` runs one event
loop in a thread of its own and offers blocking calls on it (`call`), so callers never touch the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from cuirass.bus.base import BusUnavailable
from cuirass.events.log import Row

T = TypeVar("T")
log = logging.getLogger("cuirass.bus")

SUBJECT_PREFIX = "cuirass.events"
DEFAULT_STREAM = "CUIRASS_EVENTS"
DUPLICATE_WINDOW_S = 600.0  # a copy of an event published again within this long is dropped by the stream
PUBLISH_TIMEOUT_S = 5.0  # an acknowledgement not back by then: the batch is retried as a whole
# Errors that say the bus cannot be reached now (down, restarting, no stream yet); the caller retries.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    nats.js.errors.Error,
    asyncio.TimeoutError,
    TimeoutError,
    ConnectionError,
    OSError,
)


def partition_of(account: str, partitions: int) -> int:
    """The partition an account's events go to: stable across processes and machines (not `hash()`)."""
    return zlib.crc32(account.encode("utf-8", "surrogatepass")) % partitions


def subject_prefix(stream: str = DEFAULT_STREAM) -> str:
    """The subjects a stream holds, `<prefix>.<p>`: `cuirass.events` for the default stream, `cuirass.<name>`
    for another. Two streams on one server may not share subjects, so each name has its own."""
    return SUBJECT_PREFIX if stream == DEFAULT_STREAM else f"cuirass.{stream}"


def subject_of(partition: int, stream: str = DEFAULT_STREAM) -> str:
    return f"{subject_prefix(stream)}.{partition}"


def encode(row: Row) -> bytes:
    return orjson.dumps(row)


def decode(data: bytes) -> Row:
    row = orjson.loads(data)
    if not isinstance(row, dict):
        raise ValueError("an event on the bus is not a JSON object")
    return row


class Connection:
    """A NATS connection owned by a private event-loop thread; `call` runs a coroutine on it and waits.

    There is one connection attempt at a time, shared by every caller, and it never gives up: while the
    server is down, calls time out (`BusUnavailable`) and the attempt goes on in the background, so the
    first call after the server is back finds the connection made."""

    def __init__(self, url: str, stream: str, *, name: str = "cuirass") -> None:
        self.url = url
        self.stream = stream
        self.name = name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-nats", daemon=True)
        self._thread.start()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting: asyncio.Future[Client] | None = None
        self._stream_ready = False
        self._last_error_log = 0.0
        self._closing = False

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run `make()` on the connection's loop and wait for its result; bus failures raise BusUnavailable."""
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(timeout)
        except UNAVAILABLE as exc:
            future.cancel()
            raise BusUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def js(self) -> JetStreamContext:
        """The JetStream context, connecting (and creating the stream) on first use."""
        if self._nc is None or self._nc.is_closed:
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.ensure_future(self._connect())
            # Shielded: a caller that times out leaves the shared attempt running for the next one.
            self._nc = await asyncio.shield(self._connecting)
            self._js = self._nc.jetstream()
            self._stream_ready = False
        assert self._js is not None
        if not self._stream_ready:
            await ensure_stream(self._js, self.stream)
            self._stream_ready = True
        return self._js

    async def _connect(self) -> Client:
        return await nats.connect(
            self.url,
            name=self.name,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,  # keep trying, before the first connection and after a restart
            allow_reconnect=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
        )

    async def _on_error(self, exc: Exception) -> None:
        # nats-py's default logs a traceback per attempt (twice a second while the server is down).
        now = time.monotonic()
        if now - self._last_error_log >= 30:
            self._last_error_log = now
            log.warning("%s: NATS unavailable (%s); retrying", self.name, type(exc).__name__)

    async def _on_disconnect(self) -> None:
        if not self._closing:
            log.warning("%s: disconnected from NATS; reconnecting", self.name)

    async def _on_reconnect(self) -> None:
        log.warning("%s: reconnected to NATS", self.name)

    async def nc(self) -> Client:
        await self.js()
        assert self._nc is not None
        return self._nc

    def ping(self, timeout: int = 1) -> bool:
        """Whether the server answers a round trip within `timeout` seconds (readiness)."""

        async def flush() -> None:
            nc = await self.nc()
            if not nc.is_connected:  # reconnecting: nats-py's flush would return at once
                raise ConnectionError("not connected")
            await nc.flush(timeout)

        try:
            self.call(flush, timeout)
            return True
        except BusUnavailable:
            return False

    def run(self, coro: Awaitable[T]) -> asyncio.Future[T]:
        """Schedule a coroutine on the loop without waiting (for long-running subscriptions)."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_as_coro(coro), self._loop))

    def close(self) -> None:
        self._closing = True

        async def shut() -> None:
            if self._connecting is not None and not self._connecting.done():
                self._connecting.cancel()
            if self._nc is not None and not self._nc.is_closed:
                try:
                    await asyncio.wait_for(self._nc.drain(), 5)
                except Exception:  # noqa: BLE001 - closing anyway
                    await self._nc.close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        except Exception:  # noqa: BLE001 - the bus may be gone; nothing is left to flush then
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


async def ensure_stream(js: JetStreamContext, name: str) -> None:
    """Create the events stream if it does not exist (file storage, the duplicate window above)."""
    try:
        await js.stream_info(name)
        return
    except nats.js.errors.NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=[f"{subject_prefix(name)}.>"],
            duplicate_window=DUPLICATE_WINDOW_S,
        )
    )


class EventTooLarge(ValueError):
    """An event bigger than the server's max_payload: refused for its content (the writer then stores it
    without its content and puts the whole row in the dead letters), never retried as is."""


class JetStreamSink:
    """The event writer's sink when `events.bus` is set: `append` returns once the stream acknowledged every
    row (dedupe by request id), and raises `BusUnavailable` (retry as is) when it cannot."""

    backend = "jetstream"

    def __init__(self, url: str, stream: str, partitions: int) -> None:
        self.partitions = partitions
        self.conn = Connection(url, stream, name="cuirass-gateway")

    def append(self, rows: list[Row], *, skip_present: bool = False) -> int:
        """Publish `rows` and wait for their acknowledgements; returns how many were new to the stream."""

        stream = self.conn.stream

        async def publish() -> int:
            js = await self.conn.js()
            limit = (await self.conn.nc()).max_payload
            data = [encode(row) for row in rows]
            for row, payload in zip(rows, data, strict=True):
                if len(payload) > limit - 1024:  # room for the headers
                    raise EventTooLarge(f"event {row.get('request_id')} is {len(payload)} bytes; max_payload {limit}")
            acks = await asyncio.gather(
                *(
                    js.publish(
                        subject_of(partition_of(str(row.get("account", "")), self.partitions), stream),
                        payload,
                        timeout=PUBLISH_TIMEOUT_S,
                        headers={"Nats-Msg-Id": str(row["request_id"])},
                    )
                    for row, payload in zip(rows, data, strict=True)
                )
            )
            return sum(1 for ack in acks if not ack.duplicate)

        return self.conn.call(publish, PUBLISH_TIMEOUT_S + 5)

    def missing(self, rows: list[Row]) -> list[Row]:
        """The bus cannot be asked which it holds: all of them (the duplicate window drops the copies)."""
        return rows

    def reachable(self) -> bool:
        return self.conn.ping()

    def close(self) -> None:
        self.conn.close()
