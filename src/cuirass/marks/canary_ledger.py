"""The canary ledger: which canary fact was planted, for which cohort and account, in answer to what.

One row per planted response, on the same SQL engine as the event log. A later probe of a suspect model
asks each row's `probe` question and compares the answer with `answer`; `account` and `cohort` then say
where the data left. The prompt is kept only as a hash. Writes happen off the hot path: the `canary`
defense queues records, and a background writer hands them to `CanaryLedger.record` in batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from cuirass.db import metadata

canaries_table = sa.Table(
    "canaries",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("canary_id", sa.String(64), nullable=False, index=True),
    sa.Column("cohort", sa.String(32), nullable=False, index=True),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("prompt_hash", sa.String(80), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("planted_text", sa.Text, nullable=False),
    sa.Column("probe", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
)


def prompt_hash(prompt: str) -> str:
    """The stored form of a prompt (same form as the event log's hashes-only retention)."""
    return "sha256:" + hashlib.sha256(prompt.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class CanaryRecord:
    """One planting, as the defense returns it and the ledger stores it."""

    ts: float
    canary_id: str
    cohort: str
    account: str
    prompt_hash: str
    kind: str
    planted_text: str
    probe: str
    answer: str

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_COLUMNS = [f.name for f in dataclasses.fields(CanaryRecord)]


class CanaryLedger:
    """Reads and writes the `canaries` table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, rows: Iterable[CanaryRecord | Mapping[str, Any]]) -> int:
        """Store a batch of plantings (for a background writer); returns how many were written."""
        batch = [r.to_row() if isinstance(r, CanaryRecord) else {c: r[c] for c in _COLUMNS} for r in rows]
        if batch:
            with self.engine.begin() as conn:
                conn.execute(canaries_table.insert(), batch)
        return len(batch)

    def rows(self, cohort: str | None = None, account: str | None = None) -> list[CanaryRecord]:
        """Every planting, optionally for one cohort or account, in write order."""
        q = sa.select(*[canaries_table.c[c] for c in _COLUMNS]).order_by(canaries_table.c.seq)
        if cohort is not None:
            q = q.where(canaries_table.c.cohort == cohort)
        if account is not None:
            q = q.where(canaries_table.c.account == account)
        with self.engine.connect() as conn:
            return [CanaryRecord(**r._asdict()) for r in conn.execute(q)]

    def planted_ids(self, cohort: str | None = None) -> dict[str, int]:
        """canary_id -> number of responses it was planted in."""
        q = sa.select(canaries_table.c.canary_id, sa.func.count()).group_by(canaries_table.c.canary_id)
        if cohort is not None:
            q = q.where(canaries_table.c.cohort == cohort)
        with self.engine.connect() as conn:
            return {cid: int(n) for cid, n in conn.execute(q)}
