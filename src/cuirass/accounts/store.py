"""Accounts and keys in SQL (SQLite by default, PostgreSQL for scale-out), with a short-lived key cache.

The hot path asks `lookup(key_id)` for each request; results are cached for `cache_ttl_s` so that a
request costs no database round-trip, while a revocation through the admin API takes effect at once in
this process, at once in every other gateway with a push backend (`bus.push` calls `forget`), and within
`cache_ttl_s` everywhere otherwise.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from cuirass.accounts.keys import KeyHasher, generate_key
from cuirass.db import metadata

accounts_table = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("org", sa.String(200)),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("payment_fingerprint", sa.String(200)),
    sa.Column("allowlisted", sa.Boolean, nullable=False, default=False),
)

keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float),
    sa.Column("requests_per_min", sa.Integer),
    sa.Column("tokens_per_min", sa.Integer),
)

meta_table = sa.Table("meta", metadata, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text))


class NotFound(LookupError):
    """No such account or key."""


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    org: str | None
    tags: list[str]
    created: float
    payment_fingerprint: str | None
    allowlisted: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the hot path needs to know about a verified key."""

    key_id: str
    hash: str
    account: Account
    revoked: float | None
    requests_per_min: int | None
    tokens_per_min: int | None

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "account": self.account.id,
            "revoked": self.revoked,
            "requests_per_min": self.requests_per_min,
            "tokens_per_min": self.tokens_per_min,
        }


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        org=row.org,
        tags=list(row.tags or []),
        created=row.created,
        payment_fingerprint=row.payment_fingerprint,
        allowlisted=bool(row.allowlisted),
    )


class AccountStore:
    def __init__(self, engine: sa.Engine, hasher: KeyHasher, cache_ttl_s: float = 2.0) -> None:
        self.engine = engine
        self.hasher = hasher
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._generation = 0  # bumped by `forget`: a lookup that read the store before it is not cached

    # -- accounts -------------------------------------------------------------------------------
    def create_account(
        self,
        name: str,
        *,
        org: str | None = None,
        tags: list[str] | None = None,
        payment_fingerprint: str | None = None,
        allowlisted: bool = False,
        account_id: str | None = None,
    ) -> Account:
        acc = Account(
            id=account_id or f"acct_{secrets.token_hex(8)}",
            name=name,
            org=org,
            tags=sorted(set(tags or [])),
            created=time.time(),
            payment_fingerprint=payment_fingerprint,
            allowlisted=allowlisted,
        )
        with self.engine.begin() as conn:
            if conn.execute(sa.select(accounts_table.c.id).where(accounts_table.c.id == acc.id)).first():
                raise ValueError(f"account {acc.id} already exists")
            conn.execute(accounts_table.insert().values(**acc.to_dict()))
        return acc

    def get_account(self, account_id: str) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts_table).where(accounts_table.c.id == account_id)).first()
        if row is None:
            raise NotFound(f"no account {account_id!r}")
        return _account(row)

    def list_accounts(self, limit: int = 1000, offset: int = 0) -> list[Account]:
        q = sa.select(accounts_table).order_by(accounts_table.c.created, accounts_table.c.id)
        with self.engine.connect() as conn:
            return [_account(r) for r in conn.execute(q.limit(limit).offset(offset))]

    def set_allowlisted(self, account_id: str, allowlisted: bool) -> Account:
        with self.engine.begin() as conn:
            res = conn.execute(
                accounts_table.update().where(accounts_table.c.id == account_id).values(allowlisted=allowlisted)
            )
        if res.rowcount == 0:
            raise NotFound(f"no account {account_id!r}")
        self._cache.clear()
        return self.get_account(account_id)

    # -- keys -----------------------------------------------------------------------------------
    def create_key(
        self,
        account_id: str,
        *,
        name: str | None = None,
        requests_per_min: int | None = None,
        tokens_per_min: int | None = None,
    ) -> tuple[str, str]:
        """Issue a key for the account; returns (key_id, raw_key). Only the hash is stored."""
        self.get_account(account_id)
        key_id, raw = generate_key()
        with self.engine.begin() as conn:
            conn.execute(
                keys_table.insert().values(
                    key_id=key_id,
                    account_id=account_id,
                    hash=self.hasher.hash(raw),
                    name=name,
                    created=time.time(),
                    requests_per_min=requests_per_min,
                    tokens_per_min=tokens_per_min,
                )
            )
        return key_id, raw

    def revoke_key(self, key_id: str) -> None:
        with self.engine.begin() as conn:
            res = conn.execute(
                keys_table.update()
                .where(keys_table.c.key_id == key_id, keys_table.c.revoked.is_(None))
                .values(revoked=time.time())
            )
            if (
                res.rowcount == 0
                and not conn.execute(sa.select(keys_table.c.key_id).where(keys_table.c.key_id == key_id)).first()
            ):
                raise NotFound(f"no key {key_id!r}")
        self._cache.pop(key_id, None)

    def list_keys(self, account_id: str) -> list[dict[str, Any]]:
        cols = [c for c in keys_table.c if c.name != "hash"]
        q = sa.select(*cols).where(keys_table.c.account_id == account_id).order_by(keys_table.c.created)
        with self.engine.connect() as conn:
            return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]

    def forget(self, key_ids: Iterable[str] | None = None) -> None:
        """Drop these keys (all with None) from the cache, so that their next lookup reads the store: a
        revocation made by another process, announced by the push (`bus.push`)."""
        self._generation += 1
        if key_ids is None:
            self._cache.clear()
        else:
            for key_id in key_ids:
                self._cache.pop(key_id, None)

    def cached(self, key_id: str) -> tuple[bool, KeyInfo | None]:
        """(True, the record) when the cache holds a fresh answer for the key (None: unknown), else (False, None):
        the hot path asks this first and goes to the store, off its event loop, only on a miss."""
        hit = self._cache.get(key_id)
        if hit is not None and time.monotonic() - hit[0] < self.cache_ttl_s:
            return True, hit[1]
        return False, None

    def lookup(self, key_id: str) -> KeyInfo | None:
        """The key's record (revoked ones included), cached for `cache_ttl_s`; None if unknown."""
        now = time.monotonic()
        hit, info = self.cached(key_id)
        if hit:
            return info
        generation = self._generation
        k, a = keys_table.c, accounts_table.c
        q = (
            sa.select(
                k.key_id,
                k.hash,
                k.revoked,
                k.requests_per_min,
                k.tokens_per_min,
                a.id,
                a.name,
                a.org,
                a.tags,
                a.created,
                a.payment_fingerprint,
                a.allowlisted,
            )
            .join_from(keys_table, accounts_table, a.id == k.account_id)
            .where(k.key_id == key_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        info = None
        if row is not None:
            info = KeyInfo(
                key_id=row.key_id,
                hash=row.hash,
                account=_account(row),
                revoked=row.revoked,
                requests_per_min=row.requests_per_min,
                tokens_per_min=row.tokens_per_min,
            )
        if len(self._cache) > 100_000:
            self._cache.clear()
        if generation == self._generation:  # else a revocation may have landed while this read ran
            self._cache[key_id] = (now, info)
        return info

    # -- operator metadata (admin key hash and the like) -----------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == key)).first()
        return None if row is None else row.value

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(meta_table.delete().where(meta_table.c.key == key))
            conn.execute(meta_table.insert().values(key=key, value=value))
