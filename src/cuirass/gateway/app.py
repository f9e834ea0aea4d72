"""The ASGI application: wiring of stores, upstreams and routes, plus health, models and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import orjson
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as HTTPRoute

from cuirass.accounts import AccountStore, KeyHasher, KeyInfo, parse_key
from cuirass.bus.notify import open_notifier
from cuirass.bus.push import Publisher, Receiver
from cuirass.config import Settings
from cuirass.events.deadletter import DeadLetters
from cuirass.events.log import EventSink
from cuirass.events.spool import Spool
from cuirass.events.writer import EventWriter
from cuirass.gateway import admin, http_protocol, metrics, proxy, ratelimit
from cuirass.gateway.errors import APIError
from cuirass.gateway.exchange import Exchange
from cuirass.gateway.routing import ModelRegistry
from cuirass.gateway.tracing import Tracing
from cuirass.keyring import Keyring
from cuirass.marks.epochs import EpochStore
from cuirass.respond.responder import Responder
from cuirass.storage.migrate import make_engine
from cuirass.storage.stores import open_event_log
from cuirass.verdicts.store import VerdictCache, VerdictStore

if TYPE_CHECKING:
    from cuirass.bus.jetstream import JetStreamSink

log = logging.getLogger("cuirass.gateway")

ADMIN_HASH_META = "admin_key_hash"


class Gateway:
    """Everything a request handler needs, created once per worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.hasher = KeyHasher.for_data_dir(settings.data_dir)
        self.accounts = AccountStore(self.engine, self.hasher, settings.auth.cache_ttl_s)
        ev = settings.events
        self.events = open_event_log(self.engine)  # what admin export reads (with a bus, the archive fills it)
        self.bus: JetStreamSink | None = None
        sink: EventSink = self.events
        if ev.bus:  # a fleet: events go to the stream; accounts, verdicts and the rest stay in SQL
            from cuirass.bus.jetstream import JetStreamSink  # nats-py is in the "fleet" extra

            sink = self.bus = JetStreamSink(ev.bus, ev.bus_stream, ev.bus_partitions)
        self.writer = EventWriter(
            sink,
            retention=ev.retention,
            batch_size=ev.batch_size,
            flush_interval_s=ev.flush_interval_s,
            queue_max=ev.queue_max,
            on_written=self._on_written,
            spool=Spool(settings.data_dir / "spool", ev.spool_fsync) if ev.spool else None,
            dead_letters=DeadLetters(
                settings.data_dir / "dead-letters",
                "events",
                logging.getLogger("cuirass.events"),
                on_count=metrics.DEAD_LETTERS.labels("events").inc,
            ),
        )
        self._supervisor: asyncio.Task[None] | None = None
        self.verdicts = VerdictStore(self.engine)
        self.verdict_cache = VerdictCache(self.verdicts)
        self._refresher: asyncio.Task[None] | None = None
        # Changes made anywhere in the fleet, pushed (docs/fleet.md); the poll above stays the safety net.
        self.notifier = open_notifier(settings)
        self.publisher = Publisher(self.notifier, metrics.count_push)
        self.receiver = Receiver(self.verdict_cache, self.accounts, metrics.count_push)
        self.limiter = ratelimit.make_limiter(settings)
        self.keyring = Keyring.for_data_dir(settings.data_dir, settings.policy.n_cohorts)
        self.responder = Responder(settings.policy, self.keyring)
        self.epochs = EpochStore(self.engine)
        self.principal_ttfb: dict[str, float] = {}  # EWMA seconds to the first byte, per model (decoy pacing)
        self.models = ModelRegistry(settings)
        self.tracing = Tracing(settings.tracing)  # OpenTelemetry spans, when an OTLP endpoint is set
        admin_key = settings.admin_key.get_secret_value() if settings.admin_key is not None else ""
        if admin_key:  # Settings refuses an empty or short one; an empty one must never become a hash
            self.admin_hash: str | None = self.hasher.hash(admin_key)
        else:
            self.admin_hash = self.accounts.get_meta(ADMIN_HASH_META)
        self.started = time.time()

    def _on_written(self, n: int, depth: int) -> None:
        metrics.EVENTS_WRITTEN.inc(n)
        metrics.EVENT_QUEUE.set(depth)

    async def start(self) -> None:
        """Start the event writer (which first replays what dead processes left in the spool) and its
        supervisor, the upstreams, and the verdict refresher."""
        self.writer.start()
        self._supervisor = asyncio.create_task(self._supervise())
        await self.models.start()
        await self.limiter.start()
        await asyncio.to_thread(self._refresh_state)
        self._refresher = asyncio.create_task(self._refresh_verdicts())
        if self.notifier is not None:
            self.receiver.attach(self.notifier)

    async def _supervise(self, every_s: float = 1.0) -> None:
        """Restart the event writer's thread if it ever ends: a stopped writer would blind detection."""
        while True:
            await asyncio.sleep(every_s)
            self.writer.ensure_alive()

    def _refresh_state(self) -> None:
        """What the hot path reads from the shared store: verdicts and the key epoch in force."""
        self.verdict_cache.refresh()
        self.responder.epoch = self.epochs.current().epoch

    async def _refresh_verdicts(self) -> None:
        """Keep the hot path's verdict map fresh (the detection service writes the store), and write the
        canary ledger: both are small periodic jobs off the hot path."""
        while True:
            await asyncio.sleep(self.settings.detection.refresh_s)
            try:
                await asyncio.to_thread(self._refresh_state)
            except sa.exc.SQLAlchemyError as exc:  # the store is down or restarting: expected, no traceback
                log.warning("verdict refresh failed (%s); keeping the previous verdicts", type(exc).__name__)
            except Exception:  # a failed refresh keeps the previous map
                log.warning("verdict refresh failed; keeping the previous verdicts", exc_info=True)
            await self._write_canaries()

    async def _write_canaries(self) -> None:
        """Let every defense carry out what it deferred off the hot path (the canary ledger's rows)."""
        for defense in (*self.responder.defenses.values(), *self.responder.logit_defenses.values()):
            try:
                await asyncio.to_thread(defense.flush, self.engine)
            except sa.exc.SQLAlchemyError as exc:  # the store is down: kept for the next round
                log.warning("%s: deferred write failed (%s); will retry", defense.name, type(exc).__name__)
            except Exception:  # the defense keeps them for the next round rather than lose them
                log.warning("%s: deferred write failed; will retry", defense.name, exc_info=True)

    async def close(self) -> None:
        """Stop the background jobs, then flush the event queue (what cannot be stored stays spooled)."""
        for task in (self._refresher, self._supervisor):
            if task is not None:
                task.cancel()
        await self._write_canaries()
        await self.models.close()
        await self.limiter.close()
        if self.notifier is not None:
            await asyncio.to_thread(self.notifier.close)
        await asyncio.to_thread(self.receiver.close)
        await asyncio.to_thread(self.writer.close)
        if self.bus is not None:
            await asyncio.to_thread(self.bus.close)
        await asyncio.to_thread(self.tracing.close)
        self.engine.dispose()

    async def authenticate(self, header: str | None) -> KeyInfo:
        """The key behind `Authorization: Bearer ...`, or a 401 that does not say which check failed."""
        raw = header[7:].strip() if header and header[:7].lower() == "bearer " else None
        if not raw:
            raise APIError(401, "Missing API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key")
        key_id = parse_key(raw)
        info = None
        if key_id is not None:
            hit, info = self.accounts.cached(key_id)
            if not hit:  # a round trip to the store: off the event loop, and a 503 while the store is down
                try:
                    info = await asyncio.to_thread(self.accounts.lookup, key_id)
                except sa.exc.SQLAlchemyError:
                    log.warning("key lookup failed: the account store is unavailable")
                    raise APIError(
                        503,
                        "The account store is unavailable; please retry shortly.",
                        code="service_unavailable",
                        headers={"retry-after": "1"},
                    ) from None
        # Hash and compare even for unknown ids, so timing does not tell a wrong id from a wrong secret.
        ok = self.hasher.matches(raw, info.hash if info else "0" * 64)
        if not ok or info is None:
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        if info.revoked is not None:
            raise APIError(401, "This API key has been revoked.", code="invalid_api_key")
        return info

    def check_admin(self, header: str | None) -> None:
        """A 401 unless the header carries the admin key; no key at all is never the admin key."""
        raw = header[7:].strip() if header and header[:7].lower() == "bearer " else ""
        if not raw or self.admin_hash is None or not self.hasher.matches(raw, self.admin_hash):
            raise APIError(
                401, "Admin endpoints need the admin key as 'Authorization: Bearer <key>'.", code="invalid_admin_key"
            )

    def finish(self, ex: Exchange, tokens: int = 0) -> None:
        """Close one request: exactly one event (spooled to disk before the response completes), metrics,
        token charge."""
        if ex.finished:
            return
        ex.finished = True
        try:
            event = ex.event()
        except Exception as exc:  # noqa: BLE001 - a body too odd to record still leaves an event, without it
            self.writer.dead_letters.add(f"event not built: {type(exc).__name__}: {exc}", request_id=ex.request_id)
            ex.body = None
            ex.error = f"{ex.error + '; ' if ex.error else ''}request body not recorded ({type(exc).__name__})"
            event = ex.event()
        self.writer.submit(event)
        self.tracing.record(event, ex.traceparent)
        stream = "true" if ex.body and ex.body.get("stream") is True else "false"
        metrics.REQUESTS.labels(ex.endpoint, str(ex.status)).inc()
        metrics.LATENCY.labels(ex.endpoint, stream).observe(
            cast(float, event.latency_ms) / 1000
        )  # Exchange.event() always sets it
        if ex.ttft_s is not None:
            metrics.TTFT.labels(ex.endpoint).observe(ex.ttft_s)
        if ex.upstream_s is not None:
            metrics.UPSTREAM_LATENCY.labels(ex.upstream or "principal").observe(ex.upstream_s)
        for a in ex.actions:
            metrics.ACTIONS.labels(a, "false").inc()
        for a in ex.shadowed:
            metrics.ACTIONS.labels(a, "true").inc()
        if ex.action == "pass":
            metrics.ACTIONS.labels("pass", "false").inc()
        if ex.key is not None and tokens:
            self.limiter.charge_soon(ex.key.key_id, tokens, ex.key.tokens_per_min)


async def liveness(request: Request) -> Response:
    return _json({"status": "ok"})


async def readiness(request: Request) -> Response:
    """Ready when the store answers, the event writer is alive and keeping up, and local models are loaded;
    the body says which part is not (the writer's restarts, dead letters and spool included)."""
    gw: Gateway = request.app.state.gw
    w = gw.writer
    store_ok = True
    try:
        with gw.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        store_ok = False
    local = gw.models.local_models()  # a local model still loading (or failed) cannot answer yet
    # A bus that is down does not make the gateway unready by itself: events wait in the queue and the
    # spool; the writer's backlog past queue_max does (`EventWriter.healthy`).
    ready = store_ok and w.healthy and all(m["state"] == "ready" for m in local.values())
    store = {"reachable": store_ok, "backend": gw.engine.dialect.name}
    body = {
        "status": "ready" if ready else "unready",
        "event_store": {**store, **w.state()},
        "models": gw.models.public_names(),
        "local_models": local,
        "push": {**gw.receiver.state(), "sent": gw.publisher.sent, "send_failed": gw.publisher.failed},
    }
    if gw.bus is not None:
        bus_ok = await asyncio.to_thread(gw.bus.reachable)
        body["event_store"] = {"reachable": bus_ok, "backend": gw.bus.backend, **w.state()}
        body["store"] = store
    return _json(body, 200 if ready else 503)


async def list_models(request: Request) -> Response:
    gw: Gateway = request.app.state.gw
    await gw.authenticate(request.headers.get("authorization"))
    created = int(gw.started)
    data = [{"id": n, "object": "model", "created": created, "owned_by": "cuirass"} for n in gw.models.public_names()]
    return _json({"object": "list", "data": data})


_DASHBOARD = (Path(__file__).parent / "static" / "dashboard.html").read_bytes()


async def dashboard(request: Request) -> Response:
    """The operator page: it asks for the admin key in the browser and calls /admin with it."""
    return Response(
        _DASHBOARD,
        media_type="text/html",
        headers={
            "content-security-policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            "x-frame-options": "DENY",
            "cache-control": "no-store",
        },
    )


async def metrics_endpoint(request: Request) -> Response:
    gw: Gateway = request.app.state.gw
    metrics.EVENT_QUEUE.set(gw.writer.depth)
    payload, content_type = metrics.render()
    return Response(payload, media_type=content_type)


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"Unknown path {request.url.path}.",
        405: f"Method {request.method} not allowed on {request.url.path}.",
    }
    return APIError(exc.status_code, messages.get(exc.status_code, str(exc.detail)), code=None).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)  # noqa: LOG004 - Starlette calls this inside its except
    return APIError(500, "Internal error in the gateway.", code="internal_error").response()


def create_app(settings: Settings) -> Starlette:
    http_protocol.configure(settings.server.header_timeout_s, settings.server.max_header_bytes)
    gw = Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.close()

    routes = [
        HTTPRoute("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
        HTTPRoute("/v1/completions", proxy.completions, methods=["POST"]),
        HTTPRoute("/v1/messages", proxy.messages, methods=["POST"]),
        HTTPRoute("/v1/responses", proxy.responses_, methods=["POST"]),
        HTTPRoute("/v1/models", list_models, methods=["GET"]),
        HTTPRoute("/health/liveness", liveness, methods=["GET"]),
        HTTPRoute("/health/readiness", readiness, methods=["GET"]),
        HTTPRoute("/metrics", metrics_endpoint, methods=["GET"]),
        HTTPRoute("/dashboard", dashboard, methods=["GET"]),
        *admin.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={APIError: _api_error, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.gw = gw
    return app


def app_from_env() -> Starlette:
    """Factory for multi-worker serving: each worker rebuilds settings from file + environment, and
    ends with `cuirass serve` even if serve is killed outright."""
    import os

    from cuirass.children import die_with_parent
    from cuirass.config import load_settings

    if os.environ.get("CUIRASS_SERVE_PID", "").isdigit():
        die_with_parent(int(os.environ["CUIRASS_SERVE_PID"]))

    return create_app(load_settings())
