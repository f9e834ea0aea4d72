"""Who owns which partition of the event stream, and who leads: PostgreSQL session advisory locks.

Every detector shard (`services.shards`) holds one database session for its leases. On it, it takes
- a *member* lock (key: the stream's member namespace, a random id), so that any shard can count the live
  shards by looking at `pg_locks`, with no heartbeat table to keep;
- one *partition* lock per partition it owns (key: the stream's partition namespace, the partition);
- the *leader* lock (partition namespace, key LEADER) when it runs the campaign job.

Why advisory locks and not a lease with a TTL (a JetStream KV entry): a session lock lives exactly as long
as its holder's database session, so `kill -9` of a shard frees its partitions as soon as the kernel closes
its socket (PostgreSQL notices at once), where a TTL lease would make the others wait out the TTL; and the
fleet already depends on PostgreSQL for the state these locks guard (the checkpoints), so a lease that
outlives the database would buy nothing. A shard whose session is lost (a database restart) loses every
lock with it; `verify` inside each checkpoint's transaction fences such a shard off, so two holders of a
partition never both write its checkpoint.
"""

from __future__ import annotations

import random
import zlib

import sqlalchemy as sa

LEADER = 0x7FFFFFFF  # the leader lock's second key (partitions are 0..1023)


def _namespace(kind: str, stream: str) -> int:
    """A non-negative 31-bit key for this kind of lock on this stream (pg_locks shows it as classid)."""
    return zlib.crc32(f"cuirass detect {kind}:{stream}".encode()) & 0x7FFFFFFF


class LeaseLost(RuntimeError):
    """The lease session is gone: every partition and the leadership went with it."""


class Leases:
    """The advisory locks of one shard, on one dedicated session that nothing else uses."""

    def __init__(self, engine: sa.Engine, stream: str) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("detector shards need PostgreSQL (storage.url): their leases are advisory locks")
        self.engine = engine
        self.parts = _namespace("partitions", stream)
        self.group = _namespace("members", stream)
        self.member = random.SystemRandom().randrange(1, 0x7FFFFFFF)
        self.owned: set[int] = set()
        self.leading = False
        self._conn: sa.Connection | None = None

    @property
    def conn(self) -> sa.Connection:
        """The lease session (opened, and the member lock taken, on first use)."""
        if self._conn is None:
            conn = self.engine.connect()
            try:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k1, :k2)"), {"k1": self.group, "k2": self.member})
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _try(self, key: int) -> bool:
        got = bool(
            self.conn.execute(sa.text("SELECT pg_try_advisory_lock(:k1, :k2)"), {"k1": self.parts, "k2": key}).scalar()
        )
        self.conn.commit()
        return got

    def _unlock(self, key: int) -> None:
        self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k1, :k2)"), {"k1": self.parts, "k2": key})
        self.conn.commit()

    def members(self) -> int:
        """Live shards on this stream (this one included): holders of a member lock."""
        q = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
            "AND classid = :k1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        n = int(self.conn.execute(q, {"k1": self.group}).scalar() or 0)
        self.conn.commit()
        return max(n, 1)

    def take(self, partition: int) -> bool:
        """Take a partition's lock without waiting; False if another shard holds it."""
        if self._try(partition):
            self.owned.add(partition)
            return True
        return False

    def give(self, partition: int) -> None:
        """Release a partition (after its last checkpoint), so another shard can take it."""
        self.owned.discard(partition)
        self._unlock(partition)

    def lead(self) -> bool:
        """Try to become (or stay) the campaign leader."""
        if not self.leading:
            self.leading = self._try(LEADER)
        return self.leading

    def verify(self, conn: sa.Connection, partition: int) -> None:
        """Inside a checkpoint's transaction on the lease session: raise LeaseLost unless the lock is still
        ours. (A session that died and was silently reconnected holds no lock.)"""
        q = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
            "AND classid = :k1 AND objid = :k2 AND objsubid = 2"
        )
        if not conn.execute(q, {"k1": self.parts, "k2": partition}).scalar():
            raise LeaseLost(f"partition {partition} is no longer ours")

    def held(self, conn: sa.Connection) -> set[int]:
        """Inside a transaction on the lease session: the partitions whose locks this session still holds
        (one query for every partition, where `verify` checks one)."""
        q = sa.text(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
            "AND classid = :k1 AND objsubid = 2"
        )
        return {int(r[0]) for r in conn.execute(q, {"k1": self.parts})} - {LEADER}

    def drop(self) -> None:
        """Forget every lock (the session is closed: PostgreSQL releases them all)."""
        self.owned.clear()
        self.leading = False
        if self._conn is not None:
            try:
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None
