"""Operator API under /admin (Bearer admin key): accounts, keys, verdicts, campaigns, the event log, and
what the console (/dashboard) draws: an account's requests and score, a campaign's links and harvest, and
requests, flags and actions over time."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cuirass.accounts import NotFound
from cuirass.config import RATE_MAX
from cuirass.detect.explain import account_history, campaign_links
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


HISTORY_MAX = 20_000  # newest events one account or campaign view reads
SERIES_BUCKETS_MAX = 2000


def _prompt(row: dict[str, Any]) -> str:
    """The last user message of a request, as text (what an analyst needs to judge it)."""
    for m in reversed(row.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _served(row: dict[str, Any]) -> bool:
    return row.get("response") is not None and (row.get("status") is None or row["status"] < 400)


def _request(row: dict[str, Any], prompts: bool) -> dict[str, Any]:
    out = {k: row.get(k) for k in ("ts", "request_id", "endpoint", "model", "status", "action", "actions", "shadowed")}
    out["upstream"] = row.get("upstream")
    if prompts:
        out["prompt"] = _prompt(row)
    return out


async def account_activity(request: Request) -> Response:
    """The account's newest requests (prompts only with `?prompts=true`), its own score after each, and
    each reason with the request ids behind it (replayed from its events: `detect.explain`)."""
    gw = _gw(request)
    account_id = request.path_params["account_id"]
    limit = _int_query(request, "limit", 2000, 1, HISTORY_MAX)
    prompts = request.query_params.get("prompts", "").lower() == "true"
    rows = await asyncio.to_thread(gw.events.of_accounts, [account_id], limit)
    explained = await asyncio.to_thread(account_history, rows)
    return _json(
        {
            "account": account_id,
            "requests": [_request(r, prompts) for r in rows],
            "truncated": len(rows) == limit,
            "shadow": gw.settings.policy.shadow,
            **explained,
        }
    )


def _campaign(gw: Gateway, campaign_id: str) -> dict[str, Any]:
    for c in gw.verdicts.campaigns():
        if c["id"] == campaign_id:
            return c
    raise APIError(404, f"no campaign {campaign_id}", code="not_found")


def _harvest(rows: list[dict[str, Any]], flagged_at: dict[str, float | None]) -> dict[str, Any]:
    """Answers served (and completion tokens) to each member before and after it was first flagged."""
    totals = {"before": 0, "after": 0, "tokens_before": 0, "tokens_after": 0}
    per: dict[str, dict[str, int]] = {a: {"before": 0, "after": 0} for a in flagged_at}
    for r in rows:
        if not _served(r):
            continue
        at = flagged_at.get(r["account"])
        when = "after" if at is not None and r["ts"] >= at else "before"
        usage = (r.get("response") or {}).get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else 0
        totals[when] += 1
        totals["tokens_" + when] += tokens if isinstance(tokens, int) else 0
        per[r["account"]][when] += 1
    return {**totals, "members": per}


async def show_campaign(request: Request) -> Response:
    """A campaign: its members' verdicts, the features that link them, and what it harvested before and
    after each member was flagged."""
    gw = _gw(request)
    campaign = await asyncio.to_thread(_campaign, gw, request.path_params["campaign_id"])
    members = list(campaign["accounts"])
    verdicts = [await asyncio.to_thread(gw.verdicts.get, a) for a in members]
    rows = await asyncio.to_thread(gw.events.of_accounts, members, HISTORY_MAX)
    links = await asyncio.to_thread(campaign_links, rows, members)
    harvest = _harvest(rows, {v.account: v.first_flagged_ts for v in verdicts})
    return _json(
        {
            **campaign,
            "members": [v.to_dict() for v in verdicts],
            **links,
            "harvest": {**harvest, "truncated": len(rows) == HISTORY_MAX},
        }
    )


async def set_campaign_verdict(request: Request) -> Response:
    """One operator decision applied to every member of a campaign, each recorded with who and why."""
    gw = _gw(request)
    change: VerdictChange = await _parse(request, VerdictChange)
    campaign = await asyncio.to_thread(_campaign, gw, request.path_params["campaign_id"])
    reason = f"campaign {campaign['id']}: {change.reason}"[:2000]
    out = []
    for account_id in campaign["accounts"]:
        verdict = await asyncio.to_thread(gw.verdicts.override, account_id, change.verdict, change.by, reason)
        gw.verdict_cache.put(verdict)
        out.append(verdict.to_dict())
    await asyncio.to_thread(gw.publisher.verdicts_changed, list(campaign["accounts"]))
    return _json({"object": "list", "campaign": campaign["id"], "data": out})


async def series(request: Request) -> Response:
    """Requests, errors, actions (carried out and shadowed), detector flags and operator decisions per
    time bucket since `?since=UNIX_TS` (default: the last hour), `?bucket=SECONDS` wide."""
    gw = _gw(request)
    now = time.time()
    since = _int_query(request, "since", int(now) - 3600, 0, int(now))
    bucket = _int_query(request, "bucket", 60, 1, 86400 * 7)
    n = int((now - since) // bucket) + 1
    if n > SERIES_BUCKETS_MAX:
        raise APIError(
            400, f"at most {SERIES_BUCKETS_MAX} buckets: widen bucket", param="bucket", code="invalid_request"
        )
    buckets: list[dict[str, Any]] = [
        {
            "ts": since + i * bucket,
            "requests": 0,
            "errors": 0,
            "actions": {},
            "shadowed": {},
            "flags": 0,
            "operator": {},
        }
        for i in range(n)
    ]

    def fill() -> None:
        for ts, action, shadowed, status in gw.events.activity(since):
            b = buckets[min(int((ts - since) // bucket), n - 1)]
            b["requests"] += 1
            if status is not None and status >= 400:
                b["errors"] += 1
            if action and action != "pass":
                b["actions"][action] = b["actions"].get(action, 0) + 1
            for name in shadowed or []:
                b["shadowed"][name] = b["shadowed"].get(name, 0) + 1
        for ts in gw.verdicts.first_flags_since(since):
            buckets[min(int((ts - since) // bucket), n - 1)]["flags"] += 1
        for o in gw.verdicts.overrides_since(since):
            ops = buckets[min(int((o["ts"] - since) // bucket), n - 1)]["operator"]
            ops[o["verdict"]] = ops.get(o["verdict"], 0) + 1

    await asyncio.to_thread(fill)
    return _json({"since": since, "bucket_s": bucket, "buckets": buckets})


def routes() -> list[Route]:
    return [
        Route("/admin/accounts", list_accounts, methods=["GET"]),
        Route("/admin/accounts", create_account, methods=["POST"]),
        Route("/admin/accounts/{account_id}", show_account, methods=["GET"]),
        Route("/admin/accounts/{account_id}/keys", create_key, methods=["POST"]),
        Route("/admin/accounts/{account_id}/verdict", set_verdict, methods=["PUT"]),
        Route("/admin/accounts/{account_id}/activity", account_activity, methods=["GET"]),
        Route("/admin/campaigns", list_campaigns, methods=["GET"]),
        Route("/admin/campaigns/{campaign_id}", show_campaign, methods=["GET"]),
        Route("/admin/campaigns/{campaign_id}/verdict", set_campaign_verdict, methods=["PUT"]),
        Route("/admin/series", series, methods=["GET"]),
        Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/admin/events", export_events, methods=["GET"]),
    ]
