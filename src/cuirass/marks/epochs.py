"""Key epochs: rotation starts a new epoch; old epochs stay listed so their keys are still tested.

    key(purpose, cohort, epoch) = HMAC-SHA256(master, "purpose|cohort|epoch")      (keyring.py)

An epoch is a number and the time it started; it ends when the next one starts. Epoch 0 is implicit
(it runs from the beginning of time until the first rotation), so a deployment that never rotates
keeps the keys it always had. Nothing secret is stored: the keys are derived from the master secret.
Every rotation is recorded in the audit log in the same transaction.

Hook for the gateway: derive keys with `keyring.key(purpose, cohort, EpochStore(engine).current().epoch)`
(re-read on the verdict refresh, off the hot path); the event's `ts` then says which epoch keyed it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import sqlalchemy as sa

from cuirass.audit_log import AuditLog
from cuirass.db import metadata

epochs_table = sa.Table(
    "key_epochs",
    metadata,
    sa.Column("epoch", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Epoch:
    epoch: int
    started: float  # Unix seconds; 0.0 for the implicit epoch 0
    ended: float | None  # when the next epoch started; None for the current one
    by: str = "-"
    reason: str = ""

    def contains(self, ts: float) -> bool:
        return self.started <= ts < (math.inf if self.ended is None else self.ended)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class EpochStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def all(self) -> list[Epoch]:
        """Every epoch, oldest first, with its end time."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(epochs_table).order_by(epochs_table.c.epoch)).all()
        starts = [(0, 0.0, "-", "the initial epoch")] + [
            (r.epoch, r.started, r.by, r.reason) for r in rows if r.epoch != 0
        ]
        return [
            Epoch(e, s, starts[i + 1][1] if i + 1 < len(starts) else None, by, why)
            for i, (e, s, by, why) in enumerate(starts)
        ]

    def current(self) -> Epoch:
        return self.all()[-1]

    def at(self, ts: float) -> Epoch:
        """The epoch in force at time `ts`."""
        for e in reversed(self.all()):
            if e.started <= ts:
                return e
        return self.all()[0]

    def rotate(self, by: str, reason: str, log: AuditLog | None = None) -> Epoch:
        """Start the next epoch now; the rotation is written to the audit log in the same transaction."""
        log = log or AuditLog(self.engine)
        now = time.time()
        with self.engine.begin() as conn:
            latest = conn.execute(sa.select(sa.func.max(epochs_table.c.epoch))).scalar()
            epoch = (latest or 0) + 1
            conn.execute(epochs_table.insert().values(epoch=epoch, started=now, by=by, reason=reason))
            log.append("key_epoch", {"epoch": epoch, "started": now, "by": by, "reason": reason}, conn=conn)
        return Epoch(epoch, now, None, by, reason)
