"""What detector shards keep in the database: per-partition checkpoints, campaign rows and campaign jobs.

    detect_partitions  one row per (stream, partition): the stream sequence its state reflects, the last
                       campaign job it applied, where it waits (`arrival`), whether it has read all there is
                       (its status, for the leader), and its checkpoint: the stream sequence and campaign
                       job its detector state reflects, and that state
    detect_accounts    the detector state of each account, written only when it changed since the last
                       checkpoint, in the same transaction as its partition's checkpoint (so state and
                       sequence always agree: a shard that resumes from them scores every later event
                       exactly once)
    detect_rows        the campaign rows (AccountRow) a partition offers to the leader's job
    detect_jobs        the campaign jobs the leader ran: when (`now`), the next grid time, the result

The blobs are opaque here (`services.partition` and `services.leader` make them); this module only
stores them. The database is trusted: it already holds the keys and the prompts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from cuirass.db import metadata

partitions_table = sa.Table(
    "detect_partitions",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    # The columns up to `models` are the partition's status, reported whenever it changes; `state` is the
    # checkpoint (it holds its own sequence and job), written less often: see services.partition.
    sa.Column("seq", sa.BigInteger, nullable=False),  # last stream sequence folded in
    sa.Column("job", sa.Integer, nullable=False),  # last campaign job applied (-1: none)
    sa.Column("snapshot", sa.Integer, nullable=False),  # last job whose rows it offered (-1: none)
    sa.Column("arrival", sa.Float),  # event time of the event it holds back for the next job; None: not held
    sa.Column("caught_up", sa.Boolean, nullable=False),  # it has read everything the stream had
    sa.Column("models", sa.JSON, nullable=False),  # model -> first seen (event time), for the leader to merge
    sa.Column("state", sa.LargeBinary, nullable=False),  # partition-wide detector state
    sa.Column("updated", sa.Float, nullable=False),
)

accounts_table = sa.Table(
    "detect_accounts",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("state", sa.LargeBinary, nullable=False),
)

rows_table = sa.Table(
    "detect_rows",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("row", sa.LargeBinary, nullable=False),  # a pickled campaign row (services.partition)
)

jobs_table = sa.Table(
    "detect_jobs",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("phase", sa.String(16), nullable=False),  # "rows": waiting for the partitions' rows; "done"
    sa.Column("now", sa.Float, nullable=False),  # event time the job runs at
    sa.Column("next_ts", sa.Float, nullable=False),  # the next grid time: partitions hold events at or after it
    sa.Column("result", sa.LargeBinary),  # the job's result, for the partitions to apply
    sa.Column("leader", sa.LargeBinary),  # the leader's state after the job (a new leader resumes from it)
    sa.Column("created", sa.Float, nullable=False),
)


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionRow:
    partition: int
    seq: int
    job: int
    snapshot: int
    arrival: float | None
    caught_up: bool
    models: dict[str, float]
    state: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    id: int
    phase: str
    now: float
    next_ts: float
    result: bytes | None
    leader: bytes | None


def _job(r: Any) -> Job:
    return Job(r.id, r.phase, r.now, r.next_ts, r.result, r.leader)


class ShardStore:
    """The shards' tables for one stream. Checkpoint writes take the caller's connection (the lease session,
    so that the lease check and the write share one transaction); reads use the engine."""

    def __init__(self, engine: sa.Engine, stream: str) -> None:
        self.engine = engine
        self.stream = stream

    # -- one partition ------------------------------------------------------------------------------
    def load(self, partition: int) -> tuple[PartitionRow | None, dict[str, bytes]]:
        """A partition's last checkpoint and its accounts' states (None, {}: never checkpointed)."""
        p, a = partitions_table.c, accounts_table.c
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(partitions_table).where(p.stream == self.stream, p.partition == partition)
            ).first()
            accounts = {
                x.account: bytes(x.state)
                for x in conn.execute(
                    sa.select(a.account, a.state).where(a.stream == self.stream, a.partition == partition)
                )
            }
        if r is None:
            return None, {}
        return _partition(r), accounts

    def checkpoint(
        self,
        conn: sa.Connection,
        row: PartitionRow,
        changed: Mapping[str, bytes],
        gone: set[str],
    ) -> None:
        """Write a partition's row, the accounts that changed and drop the ones it forgot (no commit)."""
        p, a = partitions_table.c, accounts_table.c
        values = dataclasses.asdict(row) | {"stream": self.stream, "updated": time.time()}
        done = conn.execute(
            partitions_table.update().where(p.stream == self.stream, p.partition == row.partition), values
        )
        if not done.rowcount:
            conn.execute(partitions_table.insert(), values)
        keys = list(changed) + list(gone)
        for i in range(0, len(keys), 1000):
            conn.execute(
                accounts_table.delete().where(
                    a.stream == self.stream, a.partition == row.partition, a.account.in_(keys[i : i + 1000])
                )
            )
        if changed:
            conn.execute(
                accounts_table.insert(),
                [
                    {"stream": self.stream, "partition": row.partition, "account": k, "state": v}
                    for k, v in changed.items()
                ],
            )

    def offer_rows(
        self, conn: sa.Connection, partition: int, rows: Mapping[str, bytes], removed: set[str] | None
    ) -> None:
        """Write a partition's new or changed campaign rows and remove those of `removed` (None: every other
        row of the partition). No commit: the caller commits them with the partition's status."""
        r = rows_table.c
        mine = sa.and_(r.stream == self.stream, r.partition == partition)
        if removed is None:
            conn.execute(rows_table.delete().where(mine))
        else:
            keys = list(rows) + list(removed)
            for i in range(0, len(keys), 1000):
                conn.execute(rows_table.delete().where(mine, r.account.in_(keys[i : i + 1000])))
        if rows:
            conn.execute(
                rows_table.insert(),
                [{"stream": self.stream, "partition": partition, "account": k, "row": v} for k, v in rows.items()],
            )

    def report(self, conn: sa.Connection, rows: list[PartitionRow]) -> None:
        """Update partitions' status columns, not their checkpoints (no commit: the caller commits them
        with the rows they offered, after checking its leases)."""
        if not rows:
            return
        p = partitions_table.c
        statement = (
            partitions_table.update()
            .where(p.stream == self.stream, p.partition == sa.bindparam("part"))
            .values(
                seq=sa.bindparam("seq"),
                job=sa.bindparam("job"),
                snapshot=sa.bindparam("snapshot"),
                arrival=sa.bindparam("arrival"),
                caught_up=sa.bindparam("caught_up"),
                models=sa.bindparam("models"),
                updated=sa.bindparam("updated"),
            )
        )
        now = time.time()
        conn.execute(
            statement,
            [
                {
                    "part": r.partition,
                    "seq": r.seq,
                    "job": r.job,
                    "snapshot": r.snapshot,
                    "arrival": r.arrival,
                    "caught_up": r.caught_up,
                    "models": r.models,
                    "updated": now,
                }
                for r in rows
            ],
        )

    # -- the leader ---------------------------------------------------------------------------------
    def partitions(self) -> list[PartitionRow]:
        p = partitions_table.c
        cols = [c for c in partitions_table.c if c.name != "state"]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols).where(p.stream == self.stream)).all()
        return [_partition(r, state=b"") for r in rows]

    def rows(self) -> list[bytes]:
        r = rows_table.c
        with self.engine.connect() as conn:
            return [bytes(x.row) for x in conn.execute(sa.select(r.row).where(r.stream == self.stream))]

    def latest_job(self, blobs: bool = True) -> Job | None:
        """The newest job; with blobs=False, without its result and leader state (polled every step)."""
        j = jobs_table.c
        cols = list(jobs_table.c) if blobs else [j.id, j.phase, j.now, j.next_ts]
        q = sa.select(*cols).where(j.stream == self.stream).order_by(j.id.desc()).limit(1)
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        if r is None:
            return None
        return _job(r) if blobs else Job(r.id, r.phase, r.now, r.next_ts, None, None)

    def job(self, job_id: int) -> Job | None:
        j = jobs_table.c
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(jobs_table).where(j.stream == self.stream, j.id == job_id)).first()
        return None if r is None else _job(r)

    def put_job(self, job: Job) -> None:
        """Insert or replace a job (the leader moves it from "rows" to "done")."""
        j = jobs_table.c
        values = dataclasses.asdict(job) | {"stream": self.stream, "created": time.time()}
        with self.engine.begin() as conn:
            conn.execute(jobs_table.delete().where(j.stream == self.stream, j.id == job.id))
            conn.execute(jobs_table.insert(), values)

    def reset(self) -> None:
        """Forget everything kept for this stream (a test, or a stream that was deleted and made anew)."""
        with self.engine.begin() as conn:
            for table in (partitions_table, accounts_table, rows_table, jobs_table):
                conn.execute(table.delete().where(table.c.stream == self.stream))


def _partition(r: Any, state: bytes | None = None) -> PartitionRow:
    return PartitionRow(
        r.partition,
        int(r.seq),
        r.job,
        r.snapshot,
        r.arrival,
        bool(r.caught_up),
        dict(r.models),
        bytes(r.state) if state is None else state,
    )
