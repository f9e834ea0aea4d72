"""Operator API under /admin (Bearer admin key): accounts, keys, and the event log."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cuirass.accounts import NotFound
from cuirass.config import RATE_MAX
from cuirass.events.deadletter import json_line
from cuirass.gateway.errors import APIError

if TYPE_CHECKING:
    from cuirass.gateway.app import Gateway


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    org: str | None = None
    tags: list[str] = Field(default_factory=list)
    payment_fingerprint: str | None = None
    allowlisted: bool = False


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    requests_per_min: int | None = Field(default=None, ge=1, le=RATE_MAX)
    tokens_per_min: int | None = Field(default=None, ge=1, le=RATE_MAX)


LIST_MAX = 100_000  # rows one list call may ask for
OFFSET_MAX = 2**62  # past any real table, and inside SQLite's 64-bit integers


def _gw(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gw
    gw.check_admin(request.headers.get("authorization"))
    return gw


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(map(str, first["loc"])) or None
        raise APIError(400, f"Invalid request: {param}: {first['msg']}", param=param, code="invalid_request") from None


def _int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi], or a 400 naming it (never an overflow further down)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise APIError(400, f"{name} must be an integer between {lo} and {hi}", param=name, code="invalid_request")
    return value


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _not_found(exc: NotFound) -> APIError:
    return APIError(404, str(exc).strip("'\""), code="not_found")


class VerdictChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["flag", "clear", "allowlist"]
    reason: str = Field(min_length=1, max_length=2000)
    by: str = Field(default="admin", min_length=1, max_length=200)


async def list_accounts(request: Request) -> Response:
    """Accounts with their verdicts; `?flagged=true` lists only accounts flagged now (any origin)."""
    gw = _gw(request)
    limit = _int_query(request, "limit", 1000, 1, LIST_MAX)
    offset = _int_query(request, "offset", 0, 0, OFFSET_MAX)
    flagged = request.query_params.get("flagged", "").lower()
    if flagged not in ("", "true", "false"):
        raise APIError(400, "flagged must be true or false", param="flagged", code="invalid_request")
    if flagged == "true":
        flagged_now = await asyncio.to_thread(gw.verdicts.all, True)
        return _json({"object": "list", "data": [v.to_dict() for v in flagged_now[offset : offset + limit]]})
    accounts = await asyncio.to_thread(gw.accounts.list_accounts, limit, offset)
    verdicts = {v.account: v for v in await asyncio.to_thread(gw.verdicts.all)}
    data = []
    for a in accounts:
        v = verdicts.get(a.id)
        data.append(
            {
                **a.to_dict(),
                "score": v.score if v else 0.0,
                "flagged": bool(v and v.flagged),
                "campaign": v.campaign if v else None,
            }
        )
    if flagged == "false":
        data = [d for d in data if not d["flagged"]]
    return _json({"object": "list", "data": data})


async def create_account(request: Request) -> Response:
    gw = _gw(request)
    spec: NewAccount = await _parse(request, NewAccount)
    try:
        acc = await asyncio.to_thread(
            gw.accounts.create_account,
            spec.name,
            org=spec.org,
            tags=spec.tags,
            payment_fingerprint=spec.payment_fingerprint,
            allowlisted=spec.allowlisted,
            account_id=spec.id,
        )
    except ValueError as exc:
        raise APIError(409, str(exc), code="conflict") from None
    return _json(acc.to_dict(), 201)


async def show_account(request: Request) -> Response:
    """The account, its keys, and its verdict: score, reasons, campaign, operator overrides."""
    gw = _gw(request)
    account_id = request.path_params["account_id"]
    verdict = await asyncio.to_thread(gw.verdicts.get, account_id)
    history = await asyncio.to_thread(gw.verdicts.history, account_id)
    try:
        acc = (await asyncio.to_thread(gw.accounts.get_account, account_id)).to_dict()
        keys = await asyncio.to_thread(gw.accounts.list_keys, account_id)
    except NotFound as exc:
        if verdict.score == 0.0 and verdict.override is None:
            raise _not_found(exc) from None
        acc, keys = {"id": account_id}, []  # seen in traffic (or replayed logs) but not registered here
    return _json({**acc, "keys": keys, "verdict": {**verdict.to_dict(), "history": history}})


async def set_verdict(request: Request) -> Response:
    """Operator decision on an account: flag, clear or allowlist, recorded with who and why."""
    gw = _gw(request)
    change: VerdictChange = await _parse(request, VerdictChange)
    account_id = request.path_params["account_id"]
    try:
        await asyncio.to_thread(gw.accounts.get_account, account_id)
    except NotFound as exc:
        known = await asyncio.to_thread(gw.verdicts.get, account_id)
        if known.score == 0.0 and known.override is None:
            raise _not_found(exc) from None
    verdict = await asyncio.to_thread(gw.verdicts.override, account_id, change.verdict, change.by, change.reason)
    gw.verdict_cache.put(verdict)
    await asyncio.to_thread(gw.publisher.verdicts_changed, [account_id])  # every other gateway, now
    return _json(verdict.to_dict())


async def list_campaigns(request: Request) -> Response:
    gw = _gw(request)
    return _json({"object": "list", "data": await asyncio.to_thread(gw.verdicts.campaigns)})


async def create_key(request: Request) -> Response:
    gw = _gw(request)
    spec: NewKey = await _parse(request, NewKey)
    try:
        key_id, raw = await asyncio.to_thread(
            gw.accounts.create_key,
            request.path_params["account_id"],
            name=spec.name,
            requests_per_min=spec.requests_per_min or gw.settings.limits.requests_per_min,
            tokens_per_min=spec.tokens_per_min or gw.settings.limits.tokens_per_min,
        )
    except NotFound as exc:
        raise _not_found(exc) from None
    return _json({"key_id": key_id, "key": raw, "note": "Shown once; only a keyed hash is stored."}, 201)


async def revoke_key(request: Request) -> Response:
    gw = _gw(request)
    try:
        await asyncio.to_thread(gw.accounts.revoke_key, request.path_params["key_id"])
    except NotFound as exc:
        raise _not_found(exc) from None
    await asyncio.to_thread(gw.publisher.keys_revoked, [request.path_params["key_id"]])  # every other gateway, now
    return _json({"key_id": request.path_params["key_id"], "revoked": True})


async def export_events(request: Request) -> Response:
    """The event log as JSON lines (`?since=UNIX_TS`), streamed."""
    gw = _gw(request)
    since_raw = request.query_params.get("since")
    try:
        since = float(since_raw) if since_raw is not None else None
    except ValueError:
        since = math.nan
    if since is not None and not math.isfinite(since):
        raise APIError(400, "since must be a Unix timestamp", param="since", code="invalid_request")

    async def lines() -> AsyncIterator[bytes]:
        it = gw.events.read(since=since)
        while True:
            batch = await asyncio.to_thread(lambda: [r for _, r in zip(range(2000), it)])
            if not batch:
                return
            yield b"".join(json_line(r) for r in batch)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def routes() -> list[Route]:
    return [
        Route("/admin/accounts", list_accounts, methods=["GET"]),
        Route("/admin/accounts", create_account, methods=["POST"]),
        Route("/admin/accounts/{account_id}", show_account, methods=["GET"]),
        Route("/admin/accounts/{account_id}/keys", create_key, methods=["POST"]),
        Route("/admin/accounts/{account_id}/verdict", set_verdict, methods=["PUT"]),
        Route("/admin/campaigns", list_campaigns, methods=["GET"]),
        Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/admin/events", export_events, methods=["GET"]),
    ]
