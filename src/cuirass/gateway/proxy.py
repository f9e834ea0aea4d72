"""The client-facing model routes, streaming or not: /v1/chat/completions and /v1/completions, and the
Messages (/v1/messages) and Responses (/v1/responses) APIs translated to chat completions (`surfaces`).

auth → body → (translation) → validation → route → rate limit → (policy) → upstream → relay, and one
event at the end.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from cuirass.actions import LOGIT_ACTIONS
from cuirass.config import ServerConfig
from cuirass.events.deadletter import RateLimitedLog
from cuirass.gateway.errors import APIError
from cuirass.gateway.exchange import CHAT, Dispatch, Exchange, ResponseAccumulator
from cuirass.gateway.ratelimit import admit
from cuirass.gateway.routing import Route
from cuirass.gateway.sse import SSEResponse
from cuirass.gateway.surfaces import Framing, Surface, anthropic, responses
from cuirass.gateway.surfaces.openai import CHAT_SURFACE, COMPLETIONS_SURFACE
from cuirass.gateway.validate import validate_request
from cuirass.respond.apply import rewrite_chunks, rewrite_response
from cuirass.respond.responder import Plan
from cuirass.upstream import UpstreamError

if TYPE_CHECKING:
    from cuirass.gateway.app import Gateway

T = TypeVar("T")


async def chat_completions(request: Request) -> Response | SSEResponse:
    return await _handle(request, CHAT_SURFACE)


async def completions(request: Request) -> Response | SSEResponse:
    return await _handle(request, COMPLETIONS_SURFACE)


async def messages(request: Request) -> Response | SSEResponse:
    return await _handle(request, anthropic.SURFACE)


async def responses_(request: Request) -> Response | SSEResponse:
    return await _handle(request, responses.SURFACE)


async def _handle(request: Request, surface: Surface) -> Response | SSEResponse:
    gw: Gateway = request.app.state.gw
    ex = Exchange(
        endpoint=surface.endpoint,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        traceparent=request.headers.get("traceparent"),
    )
    try:
        ex.key = await gw.authenticate(surface.api_key(request.headers))
        sent = orjson_body(await read_body(request, gw.settings.server))
        ex.body = sent if isinstance(sent, dict) else None
        body = surface.to_chat(sent)
        ex.body = body if isinstance(body, dict) else None  # the event holds the request as chat completions
        validate_request(body, ex.wire)
        route = await gw.models.resolve(body["model"])
        key = ex.key
        limit_headers = admit(await gw.limiter.acquire(key.key_id, key.requests_per_min, key.tokens_per_min))
        plan = _plan(gw, ex, route)
        upstream, upstream_model = route.principal, route.principal_model
        if plan is not None and plan.decoy and route.decoy is not None:
            upstream, upstream_model, ex.upstream = route.decoy, route.decoy_model or route.name, "decoy"
        ex.dispatch = Dispatch(route, upstream, dict(body, model=upstream_model), plan, limit_headers)
        if body.get("stream"):
            return await _stream(gw, request, ex, surface.framing(sent, ex.request_id))
        return await _complete(gw, request, ex, lambda resp: surface.answer(resp, sent, ex.request_id))
    except APIError as err:
        return _fail(gw, ex, err, surface)
    except UpstreamError as err:
        api = upstream_api_error(err, ex.upstream or "principal", gw.settings.server.relay_upstream_errors)
        return _fail(gw, ex, api, surface)
    except ClientDisconnect:  # hung up while sending the body: one event, and nothing to answer or log
        ex.status, ex.error = 499, "client disconnected while sending the request body"
        gw.finish(ex)
        return Response(status_code=499)
    except Exception as exc:  # noqa: BLE001 - however a request fails, it leaves its one event
        return _fail(gw, ex, _unexpected(ex, exc), surface)


log = logging.getLogger("cuirass.gateway")
_LOG_UNEXPECTED = RateLimitedLog(log)


def _unexpected(ex: Exchange, exc: Exception) -> APIError:
    """The answer to a failure no handler foresaw: 400 if the body itself cannot be sent on (orjson refuses
    it: nested too deep), else 500, logged with its traceback at most once per interval."""
    if isinstance(exc, TypeError) and ex.body is not None:
        try:
            orjson.dumps(ex.body)
        except TypeError as bad:
            return APIError(
                400,
                "The request body cannot be forwarded: it nests too deeply or holds values JSON cannot encode.",
                code="invalid_request_body",
                detail=f"unencodable body: {bad}",
            )
    _LOG_UNEXPECTED.warning("unhandled error on %s (request %s)", ex.endpoint, ex.request_id, exc_info=True)
    return APIError(
        500,
        "Internal error in the gateway.",
        code="internal_error",
        detail=f"internal error: {type(exc).__name__}: {exc}"[:2000],
    )


def _plan(gw: Gateway, ex: Exchange, route: Route) -> Plan | None:
    """Ask the policy; carry out refusals here. None: the request passes untouched."""
    acc = ex.key.account  # type: ignore[union-attr]
    verdict = gw.verdict_cache.get(acc.id)
    decision = gw.responder.decide(
        account=acc.id, org=acc.org, allowlisted=acc.allowlisted, model=route.name, verdict=verdict
    )
    ex.shadowed = decision.shadowed
    ex.upstream = "principal"
    if not decision.actions:
        ex.action = "pass"
        return None
    plan = gw.responder.plan(
        decision, account=acc.id, model=route.name, endpoint=ex.endpoint, prompt=ex.prompt_text(), verdict=verdict
    )
    serving = route.decoy if plan.decoy and route.decoy is not None else route.principal
    ex.actions = tuple(
        a
        for a in plan.actions
        if (a != "decoy" or route.decoy is not None) and (a not in LOGIT_ACTIONS or serving.runs_processors)
    )
    ex.action = ex.actions[0] if ex.actions else "pass"
    ex.cohort = plan.cohort
    refuse = {"x-should-retry": "false"}  # tell SDKs not to retry a defensive refusal automatically
    if plan.block:
        raise APIError(
            403,
            "This account is not permitted to use this model. Contact support.",
            code="account_blocked",
            headers=refuse,
        )
    if plan.throttle:
        wait = str(int(gw.responder.option("throttle", "retry_after_s", 60)))
        raise APIError(
            429,
            "Too many requests from this account. Please slow down.",
            code="account_throttled",
            headers={**refuse, "retry-after": wait},
        )
    return plan


def _fail(gw: Gateway, ex: Exchange, err: APIError, surface: Surface) -> Response:
    ex.status, ex.error = err.status, err.detail
    gw.finish(ex)
    headers = dict(err.headers)
    headers["x-request-id"] = ex.request_id
    err.headers = headers
    return surface.error_response(err)


class _Unfinished:
    """How many request bodies each client address is sending right now (this worker). A stalled body holds
    its slot until it is complete or its time is up, so one address cannot hold connections without end."""

    def __init__(self) -> None:
        self.by_address: dict[str, int] = {}

    def take(self, address: str, cap: int) -> bool:
        n = self.by_address.get(address, 0)
        if n >= cap:
            return False
        self.by_address[address] = n + 1
        return True

    def give_back(self, address: str) -> None:
        n = self.by_address[address] - 1
        if n:
            self.by_address[address] = n
        else:
            del self.by_address[address]


_UNFINISHED = _Unfinished()


async def read_body(request: Request, server: ServerConfig) -> bytes:
    """The raw body, guarded against clients that send too much or too slowly: 413 over `max_body_bytes`
    (before reading it all), 408 if it is not all there within `body_timeout_s`, 429 if this address already
    has `max_unfinished_bodies_per_client` bodies on the way. Each refusal closes the connection, since the
    rest of the body may still be coming."""
    limit = server.max_body_bytes
    close = {"connection": "close"}
    too_big = APIError(
        413, f"Request body exceeds the limit of {limit} bytes.", code="request_too_large", headers=close
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise too_big
    address = request.client.host if request.client else ""
    if not _UNFINISHED.take(address, server.max_unfinished_bodies_per_client):
        raise APIError(
            429,
            f"Too many unfinished request bodies from this address (at most "
            f"{server.max_unfinished_bodies_per_client} at once).",
            code="too_many_unfinished_bodies",
            headers={**close, "retry-after": str(max(1, round(server.body_timeout_s)))},
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(server.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
    except TimeoutError:
        raise APIError(
            408,
            f"The request body did not arrive within {server.body_timeout_s:g} s.",
            code="request_timeout",
            headers=close,
        ) from None
    finally:
        _UNFINISHED.give_back(address)
    return b"".join(chunks)


def orjson_body(raw: bytes) -> Any:
    if not raw:
        raise APIError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(
            400, f"The request body is not valid JSON: {exc.msg} (at byte {exc.pos}).", code="invalid_json"
        ) from None


_UPSTREAM_LOG = RateLimitedLog(log, 10.0)  # clients can provoke upstream errors at will: no log flood
_PARAM = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")
_DETAIL_MAX = 1000  # characters of an upstream's error text kept for the log and the event


def upstream_api_error(err: UpstreamError, which: str, relay: bool = False) -> APIError:
    """Map an upstream failure to what the client sees: 4xx passes through, 5xx/refused → 502, timeout → 504.

    The client reads Cuirass's own words, not the upstream's, which may name internal hosts, paths or models
    (`relay`, i.e. server.relay_upstream_errors, passes them on). The upstream's words always go to the log
    and, as the APIError's `detail`, to the event's `error`."""
    from cuirass.gateway import metrics

    metrics.UPSTREAM_ERRORS.labels(which, err.kind).inc()
    said = err.message[:_DETAIL_MAX]
    status = f" HTTP {err.status}" if err.status is not None else ""
    if err.kind == "timeout":
        api = APIError(504, "The model server did not answer in time.", code="upstream_timeout")
    elif err.kind == "http" and err.status is not None and 400 <= err.status < 500 and err.status != 401:
        param = _upstream_param(err.body)
        generic = "The model server rejected the request" + (f" (parameter '{param}')." if param else ".")
        api = APIError(err.status, said if relay else generic, code="upstream_rejected", param=param)
    elif err.kind == "connect":
        api = APIError(502, "The model server is unreachable.", code="upstream_unavailable")
    elif relay:
        api = APIError(502, f"The model server failed: {said}", code="upstream_error")
    elif err.kind == "protocol":
        api = APIError(
            502, "The model server's answer was malformed or ended before completion.", code="upstream_error"
        )
    else:
        api = APIError(502, "The model server failed.", code="upstream_error")
    api.detail = f"{which} upstream {err.kind}{status}: {said}"
    _UPSTREAM_LOG.warning("%s (answered %d)", api.detail, api.status)
    return api


def _upstream_param(body: dict[str, Any] | None) -> str | None:
    """The `param` of an upstream's OpenAI-style error body, if it looks like a field name (nothing else)."""
    err = (body or {}).get("error")
    param = err.get("param") if isinstance(err, dict) else None
    return param if isinstance(param, str) and _PARAM.fullmatch(param) else None


async def _complete(
    gw: Gateway, request: Request, ex: Exchange, answer: Callable[[dict[str, Any]], dict[str, Any]]
) -> Response:
    d = ex.routed
    route, upstream, upstream_body, plan, headers = d.route, d.upstream, d.body, d.plan, d.headers
    ex.upstream_started()
    try:
        resp = await _unless_disconnected(
            request,
            _paced(
                gw,
                ex,
                upstream.complete(ex.wire, upstream_body, processors=plan.processors if plan is not None else None),
            ),
        )
    except ClientGone:
        ex.status, ex.error = 499, "client disconnected before the response"
        gw.finish(ex)
        return Response(status_code=499)
    finally:
        ex.upstream_done()
    resp["model"] = route.name
    if plan is not None and (plan.rewrite or plan.strip_fields):
        await rewrite_response(resp, ex.wire == CHAT, plan)
    try:
        payload = orjson.dumps(answer(resp))
    except TypeError:  # e.g. nested deeper than JSON encoders go: the upstream's fault, and said so
        raise UpstreamError("protocol", "the model server sent an answer that cannot be encoded") from None
    acc = ResponseAccumulator(ex.wire)
    acc.add_whole(resp)
    ex.response = acc.result()
    gw.finish(ex, tokens=acc.total_tokens())
    headers["x-request-id"] = ex.request_id
    return Response(payload, headers=headers, media_type="application/json")


class ClientGone(Exception):
    """The client hung up before the answer was ready."""


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and with it the upstream request) if the client disconnects."""
    me = asyncio.current_task()
    assert me is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        me.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            raise ClientGone from None
        raise
    finally:
        watcher.cancel()


async def _stream(gw: Gateway, request: Request, ex: Exchange, framing: Framing) -> SSEResponse:
    d = ex.routed
    upstream, upstream_body, plan, headers = d.upstream, d.body, d.plan, d.headers
    # Always ask for usage upstream: token limits and the event log need it (the framing drops it if unasked).
    upstream_body["stream_options"] = {**(upstream_body.get("stream_options") or {}), "include_usage": True}
    ex.upstream_started()
    chunks = upstream.stream(ex.wire, upstream_body, processors=plan.processors if plan is not None else None)
    try:
        first = await _paced(gw, ex, chunks.__anext__())  # upstream refusals become HTTP errors here
    except StopAsyncIteration:
        first = []
    except BaseException:
        await chunks.aclose()
        raise
    headers["x-request-id"] = ex.request_id
    if plan is not None and (plan.rewrite or plan.strip_fields):
        chunks = _rewritten(ex, first, chunks, plan)
        first = await anext(chunks, [])
    return SSEResponse(_relay(gw, ex, first, chunks, framing), headers=headers)


async def _rewritten(
    ex: Exchange, first: list[dict[str, Any]], chunks: AsyncGenerator[list[dict[str, Any]], None], plan: Plan
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Collect the whole stream, rewrite it like a whole response, re-stream it (flagged traffic only)."""
    try:
        got = list(first)
        async for batch in chunks:
            got.extend(batch)
        for ch in await rewrite_chunks(got, ex.wire == CHAT, plan):
            yield [ch]
    finally:
        await chunks.aclose()


async def _paced(gw: Gateway, ex: Exchange, first_byte: Awaitable[T]) -> T:
    """Await the upstream's first byte; a decoy answer is held back to the principal's usual timing.

    The decoy is a smaller, faster model: answering sooner than the principal would tell a careful
    attacker which accounts were moved. The principal's time to first byte is tracked as an EWMA.
    """
    route = ex.routed.route
    result = await first_byte
    elapsed = time.perf_counter() - ex.t0
    if ex.upstream == "decoy":
        target = gw.principal_ttfb.get(route.name)
        if target is not None and target > elapsed:
            await asyncio.sleep(target - elapsed)
    else:
        prev = gw.principal_ttfb.get(route.name)
        gw.principal_ttfb[route.name] = elapsed if prev is None else 0.9 * prev + 0.1 * elapsed
    return result


async def _relay(
    gw: Gateway,
    ex: Exchange,
    first: list[dict[str, Any]],
    chunks: AsyncGenerator[list[dict[str, Any]], None],
    framing: Framing,
) -> AsyncIterator[bytes]:
    """Relay the upstream's chunks, a batch per write, and finish the exchange however the stream ends."""
    route = ex.routed.route
    acc = ResponseAccumulator(ex.wire)
    stream_id: str | None = None
    completed = False

    def record() -> None:  # the exchange's one event (gw.finish ignores every call after the first)
        if not ex.finished:
            ex.upstream_done()
            ex.response = acc.result()
            gw.finish(ex, tokens=acc.total_tokens())

    try:
        batch: list[dict[str, Any]] | None = first
        while batch is not None:
            out = []
            for chunk in batch:
                # One id and the public model name on every chunk, whatever the upstream does.
                if stream_id is None:
                    stream_id = chunk.get("id") or f"chatcmpl-{ex.request_id}"
                chunk["id"] = stream_id
                chunk["model"] = route.name
                acc.add_chunk(chunk)
                out.append(framing.chunk(chunk))
            if any(out):
                ex.mark_first_token()
                yield b"".join(out)
            batch = await anext(chunks, None)
        completed = True
        record()  # before the last write: a process killed after it cannot lose this event
        yield framing.end()
    except UpstreamError as err:
        api = upstream_api_error(err, ex.upstream or "principal", gw.settings.server.relay_upstream_errors)
        ex.status, ex.error = api.status, api.detail
        completed = True
        record()
        yield framing.error(api)
    finally:
        if not completed and ex.error is None:
            ex.status, ex.error = 499, "client disconnected during the stream"
        await chunks.aclose()
        record()
