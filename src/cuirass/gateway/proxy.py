"""The client-facing routes: POST /v1/chat/completions and /v1/completions, streaming or not.

auth → body → validation → route → rate limit → (policy) → upstream → relay, and one event at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cuirass.actions import LOGIT_ACTIONS
from cuirass.gateway.errors import APIError
from cuirass.gateway.exchange import Exchange, ResponseAccumulator
from cuirass.gateway.routing import Route
from cuirass.gateway.sse import DONE, SSEResponse, frame
from cuirass.gateway.validate import validate_request
from cuirass.respond.apply import rewrite_stream, rewrite_whole
from cuirass.respond.responder import Plan
from cuirass.upstream import Upstream, UpstreamError

if TYPE_CHECKING:
    from cuirass.gateway.app import Gateway

T = TypeVar("T")

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


async def chat_completions(request: Request) -> Response | SSEResponse:
    return await _handle(request, CHAT)


async def completions(request: Request) -> Response | SSEResponse:
    return await _handle(request, COMPLETIONS)


async def _handle(request: Request, endpoint: str) -> Response | SSEResponse:
    gw: Gateway = request.app.state.gw
    ex = Exchange(
        endpoint=endpoint,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    try:
        ex.key = await gw.authenticate(request.headers.get("authorization"))
        body = orjson_body(await read_body(request, gw.settings.server.max_body_bytes))
        ex.body = body if isinstance(body, dict) else None
        validate_request(body, endpoint)
        route = await gw.models.resolve(body["model"])
        key = ex.key
        limit_headers = gw.limiter.acquire(key.key_id, key.requests_per_min, key.tokens_per_min)
        plan = _plan(gw, ex, route)
        upstream, upstream_model = route.principal, route.principal_model
        if plan is not None and plan.decoy and route.decoy is not None:
            upstream, upstream_model, ex.upstream = route.decoy, route.decoy_model or route.name, "decoy"
        upstream_body = dict(body, model=upstream_model)
        if body.get("stream"):
            return await _stream(gw, request, ex, route, upstream, upstream_body, limit_headers, plan)
        return await _complete(gw, request, ex, route, upstream, upstream_body, limit_headers, plan)
    except APIError as err:
        return _fail(gw, ex, err)
    except UpstreamError as err:
        return _fail(gw, ex, upstream_api_error(err, ex.upstream or "principal"))


def _plan(gw: Gateway, ex: Exchange, route: Route) -> Plan | None:
    """Ask the policy; carry out refusals here. None: the request passes untouched."""
    acc = ex.key.account  # type: ignore[union-attr]
    verdict = gw.verdict_cache.get(acc.id)
    decision = gw.responder.decide(account=acc.id, org=acc.org, allowlisted=acc.allowlisted, model=route.name,
                                   verdict=verdict)
    ex.shadowed = decision.shadowed
    ex.upstream = "principal"
    if not decision.actions:
        ex.action = "pass"
        return None
    plan = gw.responder.plan(decision, account=acc.id, model=route.name, endpoint=ex.endpoint,
                             prompt=ex.prompt_text(), verdict=verdict)
    serving = route.decoy if plan.decoy and route.decoy is not None else route.principal
    ex.actions = tuple(a for a in plan.actions if (a != "decoy" or route.decoy is not None)
                       and (a not in LOGIT_ACTIONS or serving.runs_processors))
    ex.action = ex.actions[0] if ex.actions else "pass"
    ex.cohort = plan.cohort
    refuse = {"x-should-retry": "false"}  # tell SDKs not to retry a defensive refusal automatically
    if plan.block:
        raise APIError(403, "This account is not permitted to use this model. Contact support.",
                       code="account_blocked", headers=refuse)
    if plan.throttle:
        wait = str(int(gw.responder.option("throttle", "retry_after_s", 60)))
        raise APIError(429, "Too many requests from this account. Please slow down.", code="account_throttled",
                       headers={**refuse, "retry-after": wait})
    return plan


def _fail(gw: Gateway, ex: Exchange, err: APIError) -> Response:
    ex.status, ex.error = err.status, err.message
    gw.finish(ex)
    headers = dict(err.headers)
    headers["x-request-id"] = ex.request_id
    err.headers = headers
    return err.response()


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over `limit` bytes with 413 before reading it all."""
    declared = request.headers.get("content-length")
    too_big = APIError(413, f"Request body exceeds the limit of {limit} bytes.", code="request_too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def orjson_body(raw: bytes) -> Any:
    if not raw:
        raise APIError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc.msg} (at byte {exc.pos}).", code="invalid_json") from None


def upstream_api_error(err: UpstreamError, which: str) -> APIError:
    """Map an upstream failure to what the client sees: 4xx passes through, 5xx/refused → 502, timeout → 504."""
    from cuirass.gateway import metrics

    metrics.UPSTREAM_ERRORS.labels(which, err.kind).inc()
    if err.kind == "timeout":
        return APIError(504, "The model server did not answer in time.", code="upstream_timeout")
    if err.kind == "http" and err.status is not None and 400 <= err.status < 500 and err.status != 401:
        return APIError(err.status, err.message, code="upstream_rejected")
    if err.kind == "connect":
        return APIError(502, "The model server is unreachable.", code="upstream_unavailable")
    return APIError(502, f"The model server failed: {err.message}", code="upstream_error")


async def _complete(
    gw: Gateway, request: Request, ex: Exchange, route: Route, upstream: Upstream, upstream_body: dict[str, Any],
    headers: dict[str, str], plan: Plan | None,
) -> Response:
    ex.upstream_started()
    try:
        resp = await _unless_disconnected(request, _paced(gw, ex, route, upstream.complete(
            ex.endpoint, upstream_body, processors=plan.processors if plan is not None else None)))
    except ClientGone:
        ex.status, ex.error = 499, "client disconnected before the response"
        gw.finish(ex)
        return Response(status_code=499)
    finally:
        ex.upstream_done()
    resp["model"] = route.name
    if plan is not None and (plan.rewrite or plan.strip_fields):
        await asyncio.to_thread(rewrite_whole, resp, ex.endpoint == CHAT, plan.rewrite or _same, plan.strip_fields)
    acc = ResponseAccumulator(ex.endpoint)
    acc.add_whole(resp)
    ex.response = acc.result()
    gw.finish(ex, tokens=acc.total_tokens())
    headers["x-request-id"] = ex.request_id
    return Response(orjson.dumps(resp), headers=headers, media_type="application/json")


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


async def _stream(
    gw: Gateway, request: Request, ex: Exchange, route: Route, upstream: Upstream, upstream_body: dict[str, Any],
    headers: dict[str, str], plan: Plan | None,
) -> SSEResponse:
    client_opts = upstream_body.get("stream_options") or {}
    wants_usage = bool(client_opts.get("include_usage"))
    # Always ask for usage upstream: token limits and the event log need it; strip it if not wanted.
    upstream_body["stream_options"] = {**client_opts, "include_usage": True}
    ex.upstream_started()
    chunks = upstream.stream(ex.endpoint, upstream_body, processors=plan.processors if plan is not None else None)
    try:
        first = await _paced(gw, ex, route, chunks.__anext__())  # upstream refusals become HTTP errors here
    except StopAsyncIteration:
        first = []
    except BaseException:
        await chunks.aclose()
        raise
    headers["x-request-id"] = ex.request_id
    if plan is not None and (plan.rewrite or plan.strip_fields):
        chunks = _rewritten(ex, first, chunks, plan)
        first = await anext(chunks, [])
    return SSEResponse(_relay(gw, ex, route, first, chunks, wants_usage), headers=headers)


async def _rewritten(ex: Exchange, first: list[dict[str, Any]], chunks: AsyncIterator[list[dict[str, Any]]],
                     plan: Plan) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect the whole stream, rewrite it like a whole response, re-stream it (flagged traffic only)."""
    try:
        got = list(first)
        async for batch in chunks:
            got.extend(batch)
        for ch in await asyncio.to_thread(rewrite_stream, got, ex.endpoint == CHAT, plan.rewrite or _same,
                                          plan.strip_fields):
            yield [ch]
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _same(text: str) -> str:
    return text


async def _paced(gw: Gateway, ex: Exchange, route: Route, first_byte: Awaitable[T]) -> T:
    """Await the upstream's first byte; a decoy answer is held back to the principal's usual timing.

    The decoy is a smaller, faster model: answering sooner than the principal would tell a careful
    attacker which accounts were moved. The principal's time to first byte is tracked as an EWMA.
    """
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
    route: Route,
    first: list[dict[str, Any]],
    chunks: AsyncIterator[list[dict[str, Any]]],
    wants_usage: bool,
) -> AsyncIterator[bytes]:
    """Relay the upstream's chunks, a batch per write, and finish the exchange however the stream ends."""
    acc = ResponseAccumulator(ex.endpoint)
    stream_id: str | None = None
    completed = False
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
                if not wants_usage:
                    if not chunk.get("choices") and chunk.get("usage"):
                        continue  # the trailing usage-only chunk the client did not ask for
                    chunk.pop("usage", None)
                out.append(frame(orjson.dumps(chunk)))
            if out:
                ex.mark_first_token()
                yield b"".join(out)
            batch = await anext(chunks, None)
        yield DONE
        completed = True
    except UpstreamError as err:
        api = upstream_api_error(err, ex.upstream or "principal")
        ex.status, ex.error = api.status, api.message
        yield frame(orjson.dumps(api.body()))
        completed = True
    finally:
        if not completed and ex.error is None:
            ex.status, ex.error = 499, "client disconnected during the stream"
        await chunks.aclose()  # type: ignore[attr-defined]
        ex.upstream_done()
        ex.response = acc.result()
        gw.finish(ex, tokens=acc.total_tokens())
