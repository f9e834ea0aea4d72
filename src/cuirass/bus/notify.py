"""Small notices between the processes of a fleet, over Redis pub/sub or NATS core pub/sub.

    detection.push = "redis://127.0.0.1:6379/0"  ->  Redis PUBLISH / SUBSCRIBE on channel `detection.push_channel`
    detection.push = "nats://127.0.0.1:4222"     ->  NATS core publish / subscribe on that subject

Both are at most once and keep no history: a notice sent while a subscriber is away is lost to it. That is
all the push (`bus.push`) needs, because the SQL store stays the record: a notice only says "re-read
these", a subscriber re-reads everything each time it (re)connects, and the gateway's periodic poll
catches whatever else was lost. So neither engine's persistence (Redis streams, JetStream) is used here.

A `Notifier` publishes from any thread (blocking, bounded by `timeout_s`) and delivers what it receives to
one handler on a thread of its own, reconnecting by itself for as long as it lives. Each client library is
imported where it is used, so a command that never pushes (`cuirass keys create`) loads neither.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cuirass.config import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

log = logging.getLogger("cuirass.push")

Handler = Callable[[bytes], None]  # one notice as received: untrusted bytes
OnConnect = Callable[[], None]  # subscribed (again): whatever was said while away is lost

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
NATS_SCHEMES = ("nats://", "tls://")
OFF = "off"  # detection.push = "off": polling only, even where events.bus or a Redis limits.backend is set


class PushUnavailable(Exception):
    """The push backend cannot take a notice now (down, unreachable, too slow)."""


class Notifier(Protocol):
    backend: str  # "redis" or "nats", for readiness and logs (never the URL: it may carry a password)

    def publish(self, data: bytes) -> None:
        """Send one notice to every subscriber; raises PushUnavailable when it cannot."""
        ...

    def subscribe(self, on_message: Handler, on_connect: OnConnect) -> None:
        """Deliver every notice to `on_message` from now on, in the background, resubscribing after any
        loss of the connection; `on_connect` is called each time the subscription is (re)established."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the subscription is live now."""
        ...

    def close(self) -> None: ...


def push_url(settings: Settings) -> str | None:
    """Where notices go: `detection.push`; else the event bus (NATS); else `limits.backend` when it is
    Redis; else nowhere (each gateway polls, as on one machine)."""
    if settings.detection.push:
        return None if settings.detection.push == OFF else settings.detection.push
    if settings.events.bus:
        return settings.events.bus
    backend = settings.limits.backend
    if backend and backend.startswith(REDIS_SCHEMES):
        return backend
    return None


def open_notifier(settings: Settings, timeout_s: float = 0.5) -> Notifier | None:
    """The notifier the settings name (see `push_url`), or None: no push, polling alone."""
    url = push_url(settings)
    if url is None:
        return None
    channel = settings.detection.push_channel
    if url.startswith(REDIS_SCHEMES):
        return RedisNotifier(url, channel, timeout_s)
    if url.startswith(NATS_SCHEMES):
        return NatsNotifier(url, channel, timeout_s)
    raise ValueError("detection.push must be a redis://, rediss://, unix://, nats:// or tls:// URL, or 'off'")


class _Backoff:
    """Waits between reconnection attempts: 0.2 s doubling to 5 s, back to 0.2 s after a success."""

    def __init__(self) -> None:
        self.delay = 0.2

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 5.0)
        return delay

    def reset(self) -> None:
        self.delay = 0.2


class RedisNotifier:
    """Redis PUBLISH / SUBSCRIBE (redis-py); the subscription runs in a thread that reconnects forever."""

    backend = "redis"

    def __init__(self, url: str, channel: str, timeout_s: float = 0.5) -> None:
        import redis

        self.url = url
        self.channel = channel
        self._publisher = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False

    def publish(self, data: bytes) -> None:
        import redis

        try:
            self._publisher.publish(self.channel, data)
        except (redis.RedisError, OSError) as exc:
            raise PushUnavailable(type(exc).__name__) from None

    def subscribe(self, on_message: Handler, on_connect: OnConnect) -> None:
        self._thread = threading.Thread(
            target=self._listen, args=(on_message, on_connect), name="cuirass-push-redis", daemon=True
        )
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected

    def _listen(self, on_message: Handler, on_connect: OnConnect) -> None:
        import redis

        backoff = _Backoff()
        while not self._stop.is_set():
            # Pings every 2 s: a connection that died silently is noticed, not waited on forever.
            client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=2)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                pubsub.ping()  # the subscription is confirmed once the reply to this comes back
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    if msg.get("type") == "pong" or msg.get("data") in (b"PONG", "PONG"):
                        if not self._connected:
                            self._connected = True
                            backoff.reset()
                            log.info("push: subscribed to Redis channel %s", self.channel)
                            on_connect()
                        continue
                    data = msg.get("data")
                    if msg.get("type") == "message" and isinstance(data, bytes):
                        on_message(data)
            except (redis.RedisError, OSError) as exc:
                if self._connected:
                    log.warning("push: lost Redis (%s); polling until it is back", type(exc).__name__)
                self._connected = False
            finally:
                try:
                    pubsub.close()
                    client.close()
                except (redis.RedisError, OSError):
                    pass
            self._stop.wait(backoff.next())

    def close(self) -> None:
        import redis

        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self._publisher.close()
        except (redis.RedisError, OSError):
            pass


class NatsNotifier:
    """NATS core publish / subscribe (nats-py) on an event loop in a thread of its own (nats-py is
    asyncio-only, its callers are threads). One connection, opened on first use by a task that keeps
    trying until the server answers; once connected, nats-py reconnects and resubscribes by itself."""

    backend = "nats"

    def __init__(self, url: str, channel: str, timeout_s: float = 0.5) -> None:
        self.url = url
        self.channel = channel
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cuirass-push-nats", daemon=True)
        self._thread.start()
        self._connecting: asyncio.Task[Client] | None = None  # lives on the loop, like all below
        self._connecting_since = 0.0
        self._on_message: Handler | None = None
        self._on_connect: OnConnect | None = None
        self._subscribed = False
        self._closing = False

    def publish(self, data: bytes) -> None:
        async def send() -> None:
            nc = await self._live()
            await nc.publish(self.channel, data)
            await asyncio.wait_for(nc.flush(), self.timeout_s)  # the server has it (a round trip), or this raises

        future = asyncio.run_coroutine_threadsafe(send(), self._loop)
        try:
            future.result(self.timeout_s * 4)
        except Exception as exc:  # noqa: BLE001 - any failure to hand the notice over is "unavailable"
            future.cancel()
            raise PushUnavailable(type(exc).__name__) from None

    def subscribe(self, on_message: Handler, on_connect: OnConnect) -> None:
        async def start() -> None:
            self._on_message, self._on_connect = on_message, on_connect
            task = self._connection()
            if task.done() and not task.cancelled() and task.exception() is None:
                await self._subscribe(task.result())
            # else the connection subscribes when it comes up

        asyncio.run_coroutine_threadsafe(start(), self._loop)

    @property
    def connected(self) -> bool:
        task = self._connecting
        return bool(self._subscribed and task is not None and task.done() and task.result().is_connected)

    def _connection(self) -> asyncio.Task[Client]:
        if self._connecting is None:
            self._connecting_since = time.monotonic()
            self._connecting = asyncio.ensure_future(self._connect())
        return self._connecting

    async def _connect(self) -> Client:
        import nats

        nc = await nats.connect(
            self.url,
            name="cuirass-push",
            connect_timeout=max(self.timeout_s, 1.0),
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # keep trying, the first time too: a gateway may start before NATS
            reconnect_time_wait=0.5,
            ping_interval=5,
            max_outstanding_pings=2,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            error_cb=self._error,
        )
        if self._on_message is not None:
            await self._subscribe(nc)
        return nc

    async def _live(self) -> Client:
        """The connection, if it is up: a first connection is waited for briefly (a CLI command sends
        right after it starts); after that, no publish waits on a server that is down."""
        task = self._connection()
        if not task.done():
            left = self._connecting_since + 2 * self.timeout_s - time.monotonic()
            if left <= 0:
                raise PushUnavailable("not connected")
            await asyncio.wait_for(asyncio.shield(task), left)
        nc = task.result()
        if not nc.is_connected:
            raise PushUnavailable("reconnecting")
        return nc

    async def _subscribe(self, nc: Client) -> None:
        try:
            await nc.subscribe(self.channel, cb=self._deliver)
            await asyncio.wait_for(nc.flush(), 2)
        except Exception as exc:  # noqa: BLE001 - e.g. lost again at once; nats-py resubscribes on reconnect
            log.warning("push: NATS subscription not confirmed (%s)", type(exc).__name__)
        self._subscribed = True
        log.info("push: subscribed to NATS subject %s", self.channel)
        self._connected_again()

    async def _deliver(self, msg: Msg) -> None:
        if self._on_message is not None:
            self._on_message(msg.data)

    def _connected_again(self) -> None:
        if self._on_connect is not None:
            self._on_connect()

    async def _disconnected(self) -> None:
        if self._subscribed and not self._closing:
            log.warning("push: lost NATS; polling until it is back")

    async def _reconnected(self) -> None:
        if self._subscribed:  # the client resubscribed by itself
            log.info("push: NATS is back")
            self._connected_again()

    async def _error(self, exc: Exception) -> None:
        log.debug("push: NATS error %s", type(exc).__name__)

    def close(self) -> None:
        async def shut() -> None:
            self._closing = True
            task = self._connecting
            if task is None:
                return
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None and not task.result().is_closed:
                await task.result().close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        except Exception:  # noqa: BLE001 - closing anyway; the server may be gone
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
