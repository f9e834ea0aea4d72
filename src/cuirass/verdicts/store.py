"""Verdicts in SQL, shared by every gateway worker and replica.

Two sources, kept apart so neither overwrites the other:
- automatic verdicts, written by the detection service (`verdicts`, one row per account, replaced freely);
- operator overrides (`verdict_overrides`, append-only: who, why, when; the newest row per account rules).

The effective verdict of the two is plain data, computed without SQL: `cuirass.verdicts.model`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from cuirass.audit_log import AuditLog
from cuirass.db import metadata
from cuirass.verdicts.model import OVERRIDES, AccountVerdict, effective
from cuirass.verdicts.source import VERDICT_SOURCES, VerdictSource

verdicts_table = sa.Table(
    "verdicts",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("campaign", sa.String(64)),
    sa.Column("first_flagged_ts", sa.Float),
    sa.Column("updated", sa.Float, nullable=False),
)

overrides_table = sa.Table(
    "verdict_overrides",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("score_at", sa.Float),  # the automatic score when the override was made
    sa.Column("ts", sa.Float, nullable=False),
)

campaigns_table = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("accounts", sa.JSON, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)


def _row(r: Any) -> dict[str, Any]:
    return {str(k): v for k, v in r._mapping.items()}


@VERDICT_SOURCES.register
class VerdictStore:
    """The verdicts in SQL: the `VerdictSource` of every deployment today, plus the operators' side
    (overrides, their history, the full list) that the admin API and the CLI use."""

    name = "sql"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.audit = AuditLog(engine)  # overrides are recorded in the tamper-evident log

    # -- written by the detection service -----------------------------------------------------
    def put_auto(self, rows: Iterable[dict[str, Any]]) -> int:
        """Replace the automatic verdicts of these accounts (keys: account, score, flagged, reasons,
        campaign, first_flagged_ts)."""
        rows = [dict(r, updated=time.time()) for r in rows]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(verdicts_table.delete().where(verdicts_table.c.account.in_([r["account"] for r in rows])))
            conn.execute(verdicts_table.insert(), rows)
        return len(rows)

    def put_campaigns(self, campaigns: list[dict[str, Any]]) -> None:
        """Replace the campaign list (keys: id, accounts, score, reasons)."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(campaigns_table.delete())
            if campaigns:
                conn.execute(
                    campaigns_table.insert(),
                    [
                        {
                            "id": c["id"],
                            "accounts": list(c["accounts"]),
                            "score": float(c["score"]),
                            "reasons": list(c["reasons"]),
                            "updated": now,
                        }
                        for c in campaigns
                    ],
                )

    # -- written by operators ------------------------------------------------------------------
    def override(self, account: str, verdict: str, by: str, reason: str) -> AccountVerdict:
        if verdict not in OVERRIDES:
            raise ValueError(f"verdict must be one of {', '.join(OVERRIDES)}")
        auto = self._auto(account)
        with self.engine.begin() as conn:
            conn.execute(
                overrides_table.insert().values(
                    account=account,
                    verdict=verdict,
                    by=by,
                    reason=reason,
                    score_at=float(auto["score"]) if auto else 0.0,
                    ts=time.time(),
                )
            )
            self.audit.append(
                "verdict_override", {"account": account, "verdict": verdict, "by": by, "reason": reason}, conn=conn
            )  # both or neither
        return self.get(account)

    def history(self, account: str) -> list[dict[str, Any]]:
        q = sa.select(overrides_table).where(overrides_table.c.account == account).order_by(overrides_table.c.id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def overrides_since(self, since: float) -> list[dict[str, Any]]:
        """Every operator override made at or after `since`, oldest first (the console's timeline)."""
        q = sa.select(overrides_table).where(overrides_table.c.ts >= since).order_by(overrides_table.c.id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def first_flags_since(self, since: float) -> list[float]:
        """When each account the detector flags now was first flagged, for those at or after `since`."""
        v = verdicts_table.c
        q = sa.select(v.first_flagged_ts).where(v.flagged.is_(True), v.first_flagged_ts >= since)
        with self.engine.connect() as conn:
            return [float(ts) for (ts,) in conn.execute(q)]

    # -- read ----------------------------------------------------------------------------------
    def _auto(self, account: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(verdicts_table).where(verdicts_table.c.account == account)).first()
        return None if r is None else _row(r)

    def _latest_overrides(self, accounts: list[str] | None = None) -> dict[str, dict[str, Any]]:
        latest = sa.select(sa.func.max(overrides_table.c.id)).group_by(overrides_table.c.account)
        q = sa.select(overrides_table).where(overrides_table.c.id.in_(latest))
        if accounts is not None:
            q = q.where(overrides_table.c.account.in_(accounts))
        with self.engine.connect() as conn:
            return {r.account: _row(r) for r in conn.execute(q)}

    def get(self, account: str) -> AccountVerdict:
        return effective(self._auto(account), self._latest_overrides([account]).get(account), account)

    def all(self, flagged_only: bool = False) -> list[AccountVerdict]:
        """Every account with a verdict or an override (effective), highest score first."""
        q = sa.select(verdicts_table)
        if flagged_only:
            q = q.where(verdicts_table.c.flagged.is_(True))
        with self.engine.connect() as conn:
            autos = {r.account: _row(r) for r in conn.execute(q)}
        overrides = self._latest_overrides()
        names = set(autos) | set(overrides)
        out = [effective(autos.get(a), overrides.get(a), a) for a in names]
        if flagged_only:
            out = [v for v in out if v.flagged]
        return sorted(out, key=lambda v: (-v.score, v.account))

    def poll(self, floor: float) -> dict[str, AccountVerdict]:
        q = sa.select(verdicts_table).where(sa.or_(verdicts_table.c.score >= floor, verdicts_table.c.flagged.is_(True)))
        with self.engine.connect() as conn:
            autos = {r.account: _row(r) for r in conn.execute(q)}
        overrides = self._latest_overrides()
        names = set(autos) | set(overrides)
        return {a: effective(autos.get(a), overrides.get(a), a) for a in names}

    def campaigns(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(sa.select(campaigns_table))]
        return sorted(rows, key=lambda c: (-c["score"], c["id"]))


FLOOR = 0.2  # the lowest score a gateway keeps in its cache; below it, and unflagged, nothing is done


class VerdictCache:
    """What the hot path consults per request: an in-memory map refreshed in the background.

    Holds only accounts that matter to the policy (score at or above `floor`, flagged, or overridden),
    so a lookup is a dict get and the refresh stays small even with millions of accounts.

    Refreshes (the periodic poll, and pushed notices: `bus.push`) run one at a time, so one that started
    before a change was committed cannot finish after one that started later and put back the older map.
    """

    def __init__(self, store: VerdictSource, floor: float = FLOOR) -> None:
        self.store = store
        self.floor = floor
        self._map: dict[str, AccountVerdict] = {}
        self.loaded_at = 0.0
        self._refreshing = threading.Lock()

    def get(self, account: str) -> AccountVerdict | None:
        return self._map.get(account)

    def put(self, verdict: AccountVerdict) -> None:
        """Apply a change made in this process at once (an operator override), before the next refresh."""
        self._map = {**self._map, verdict.account: verdict}

    def refresh(self) -> None:
        """Reload from the source (blocking; call from a thread)."""
        with self._refreshing:
            self._map = self.store.poll(self.floor)
            self.loaded_at = time.time()

    def refresh_accounts(self, accounts: Iterable[str]) -> None:
        """Re-read these accounts only (blocking; call from a thread): a change another process announced."""
        with self._refreshing:
            fresh = {a: self.store.get(a) for a in accounts}
            new = dict(self._map)
            for account, v in fresh.items():
                if v.flagged or v.score >= self.floor or v.override is not None:
                    new[account] = v
                else:
                    new.pop(account, None)
            self._map = new
