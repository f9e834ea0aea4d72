"""`cuirass accounts` and `cuirass keys`: manage who may call the gateway, straight on the store."""

from __future__ import annotations

import os
from typing import Any

import click

from cuirass.accounts import NotFound
from cuirass.bus.push import publishing
from cuirass.cli.common import emit, store_options
from cuirass.config import RATE_MAX, Settings
from cuirass.storage.migrate import make_engine
from cuirass.storage.stores import open_store
from cuirass.verdicts.model import OVERRIDES
from cuirass.verdicts.store import VerdictStore


def _account_line(a: dict[str, Any]) -> str:
    flags = " [allowlisted]" if a["allowlisted"] else ""
    tags = f" tags={','.join(a['tags'])}" if a["tags"] else ""
    org = f" org={a['org']}" if a["org"] else ""
    return f"{a['id']}  {a['name']}{org}{tags}{flags}"


@click.group()
def accounts() -> None:
    """Create, list and inspect accounts."""


@accounts.command("create")
@click.argument("name")
@click.option("--id", "account_id", help="Account id (default: generated).")
@click.option("--org", help="Organisation the account belongs to.")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several.")
@click.option("--payment-fingerprint", help="Opaque hash from the billing record.")
@click.option("--allowlist", is_flag=True, help="Never apply defenses to this account.")
@click.option("--with-key", is_flag=True, help="Also issue an API key and print it (once).")
@store_options
def create_account(
    settings: Settings,
    as_json: bool,
    name: str,
    account_id: str | None,
    org: str | None,
    tags: tuple[str, ...],
    payment_fingerprint: str | None,
    allowlist: bool,
    with_key: bool,
) -> None:
    """Create an account called NAME."""
    store = open_store(settings)
    try:
        acc = store.create_account(
            name,
            org=org,
            tags=list(tags),
            payment_fingerprint=payment_fingerprint,
            allowlisted=allowlist,
            account_id=account_id,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    out: dict[str, Any] = acc.to_dict()
    if with_key:
        limits = settings.limits  # the defaults for keys created without their own, as `keys create` applies
        out["key_id"], out["key"] = store.create_key(
            acc.id, requests_per_min=limits.requests_per_min, tokens_per_min=limits.tokens_per_min
        )
    emit(out, as_json, lambda d: _account_line(d) + (f"\nAPI key (shown once): {d['key']}" if "key" in d else ""))


@accounts.command("list")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 2**62))
@click.option("--flagged", is_flag=True, help="Only accounts flagged now (by detection or an operator).")
@store_options
def list_accounts(settings: Settings, as_json: bool, limit: int, flagged: bool) -> None:
    """List accounts, oldest first (with --flagged: riskiest first)."""
    if flagged:
        rows = [v.to_dict() for v in VerdictStore(make_engine(settings.database_url)).all(True)[:limit]]
        emit(
            rows,
            as_json,
            lambda rs: (
                "\n".join(
                    f"{v['account']}  score={v['score']:.3f}  campaign={v['campaign'] or '-'}  "
                    f"{(v['reasons'] or [''])[0]}"
                    for v in rs
                )
                or "no flagged accounts"
            ),
        )
        return
    rows = [a.to_dict() for a in open_store(settings).list_accounts(limit)]
    emit(rows, as_json, lambda rs: "\n".join(_account_line(a) for a in rs) or "no accounts")


@accounts.command("verdict")
@click.argument("account_id")
@click.argument("verdict", type=click.Choice(OVERRIDES))
@click.option("--reason", required=True, help="Why (kept in the account's history).")
@click.option("--by", default=lambda: os.environ.get("USER", "operator"), show_default="$USER", help="Who decided.")
@store_options
def set_verdict(settings: Settings, as_json: bool, account_id: str, verdict: str, reason: str, by: str) -> None:
    """Flag, clear or allowlist ACCOUNT_ID, recorded with who and why."""
    accounts_store = open_store(settings)
    store = VerdictStore(accounts_store.engine)
    try:
        accounts_store.get_account(account_id)
    except NotFound as exc:
        known = store.get(account_id)
        if known.score == 0.0 and known.override is None:  # neither registered nor seen in traffic
            raise click.ClickException(str(exc)) from None
    v = store.override(account_id, verdict, by, reason)
    with publishing(settings) as publisher:  # running gateways apply it now, not at their next poll
        publisher.verdicts_changed([account_id])
    emit(v.to_dict(), as_json, lambda d: f"{d['account']}: {verdict} by {by} (flagged now: {d['flagged']})")


@accounts.command("show")
@click.argument("account_id")
@store_options
def show_account(settings: Settings, as_json: bool, account_id: str) -> None:
    """Show one account and its keys (never the keys themselves)."""
    store = open_store(settings)
    verdicts = VerdictStore(store.engine)
    try:
        data: dict[str, Any] = {**store.get_account(account_id).to_dict(), "keys": store.list_keys(account_id)}
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    data["verdict"] = {**verdicts.get(account_id).to_dict(), "history": verdicts.history(account_id)}

    def human(d: dict[str, Any]) -> str:
        lines = [_account_line(d)]
        for k in d["keys"]:
            state = "revoked" if k["revoked"] else "active"
            limits = f" rpm={k['requests_per_min']}" if k["requests_per_min"] else ""
            limits += f" tpm={k['tokens_per_min']}" if k["tokens_per_min"] else ""
            lines.append(f"  key {k['key_id']} {state}{limits}")
        v = d["verdict"]
        lines.append(f"  risk {v['score']:.3f}{'  FLAGGED' if v['flagged'] else ''}  campaign={v['campaign'] or '-'}")
        lines += [f"    - {r}" for r in v["reasons"]]
        lines += [f"  {h['verdict']} by {h['by']}: {h['reason']}" for h in v["history"]]
        return "\n".join(lines)

    emit(data, as_json, human)


@click.group()
def keys() -> None:
    """Issue and revoke API keys."""


@keys.command("create")
@click.argument("account_id")
@click.option("--name", help="A label for the key.")
@click.option("--rpm", type=click.IntRange(1, RATE_MAX), help="Requests per minute allowed (default: unlimited).")
@click.option("--tpm", type=click.IntRange(1, RATE_MAX), help="Tokens per minute allowed (default: unlimited).")
@store_options
def create_key(
    settings: Settings, as_json: bool, account_id: str, name: str | None, rpm: int | None, tpm: int | None
) -> None:
    """Issue a key for ACCOUNT_ID. It is printed once; only a keyed hash is stored."""
    store = open_store(settings)
    try:
        key_id, raw = store.create_key(
            account_id,
            name=name,
            requests_per_min=rpm or settings.limits.requests_per_min,
            tokens_per_min=tpm or settings.limits.tokens_per_min,
        )
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    emit(
        {"key_id": key_id, "key": raw, "account": account_id},
        as_json,
        lambda d: f"key {d['key_id']} for {d['account']} (shown once):\n{d['key']}",
    )


@keys.command("revoke")
@click.argument("key_id")
@store_options
def revoke_key(settings: Settings, as_json: bool, key_id: str) -> None:
    """Revoke KEY_ID (running gateways refuse it at once with a push backend, else within auth.cache_ttl_s)."""
    try:
        open_store(settings).revoke_key(key_id)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    with publishing(settings) as publisher:
        publisher.keys_revoked([key_id])
    emit({"key_id": key_id, "revoked": True}, as_json, lambda d: f"revoked {d['key_id']}")


COMMANDS = [accounts, keys]
