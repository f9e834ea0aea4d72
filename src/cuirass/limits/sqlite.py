"""Counters in a SQLite file under the data directory: shared by the `--workers N` of one machine.

Each decision is one statement, an upsert that applies gcra.admit to the key's row and returns the row
(SQLite takes its write lock for the whole statement, so two workers cannot both spend the last request).
The file is WAL with synchronous=OFF: losing the last decisions to a power cut only refills some buckets,
which is not worth a disk flush per request. It is a scratch file, not part of the event database: it is
not migrated, and deleting it while the gateway is stopped only refills every bucket.

sqlite3 blocks while it waits for the lock, so every statement runs on one thread of this worker, never
on the event loop. The lock wait (SQLite's busy timeout) gives up a little before `limits.backend_timeout_s`,
so a decision the Limiter has already answered by its fail mode is not applied to the file afterwards.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cuirass.limits.gcra import WINDOW_US, State, request_interval

_SCHEMA = """CREATE TABLE IF NOT EXISTS buckets (
    key_id TEXT PRIMARY KEY,
    requests_tat INTEGER NOT NULL,
    tokens_tat INTEGER NOT NULL,
    admitted INTEGER NOT NULL
) WITHOUT ROWID"""

# gcra.admit on the stored row; in an upsert's SET every column name means the row before the update.
_FITS = f"""(:interval IS NULL OR max(requests_tat, :now) + :interval <= :now + {WINDOW_US})
    AND (NOT :tpm OR tokens_tat < :now + {WINDOW_US})"""
_ACQUIRE = f"""INSERT INTO buckets (key_id, requests_tat, tokens_tat, admitted)
VALUES (:key, :now + coalesce(:interval, 0), :now, 1)
ON CONFLICT (key_id) DO UPDATE SET
    admitted = {_FITS},
    requests_tat = CASE WHEN {_FITS} THEN max(requests_tat, :now) + coalesce(:interval, 0) ELSE requests_tat END
RETURNING admitted, requests_tat, tokens_tat"""
_CHARGE = """INSERT INTO buckets (key_id, requests_tat, tokens_tat, admitted) VALUES (:key, :now, :now + :cost, 1)
ON CONFLICT (key_id) DO UPDATE SET tokens_tat = max(tokens_tat, :now) + :cost"""
# A row whose two tats have passed is a full bucket, the same as no row.
_PRUNE = "DELETE FROM buckets WHERE requests_tat <= :now AND tokens_tat <= :now"
PRUNE_EVERY_US = 60_000_000
LOCK_WAIT = 0.8  # of the backend timeout: the rest is left for the thread hop and the statement itself
T = TypeVar("T")


def _wall_us() -> int:
    return time.time_ns() // 1000  # every worker of the machine reads the same clock


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path, timeout_s: float, clock: Callable[[], int] = _wall_us) -> None:
        self.path = path
        self.where = str(path)
        self._timeout_s = timeout_s
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="cuirass-limits")
        self._conn: sqlite3.Connection | None = None  # used on that thread only
        self._pruned = 0

    async def start(self) -> None:
        return None  # the file is opened on first use, so a locked or missing file cannot stop a start

    async def close(self) -> None:
        await self._run(self._close)
        self._thread.shutdown(wait=False)

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None) -> tuple[bool, State, int]:
        return await self._run(self._acquire, key_id, request_interval(rpm), tpm is not None)

    async def charge(self, key_id: str, cost: int) -> None:
        await self._run(self._charge, key_id, cost)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._timeout_s * LOCK_WAIT, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _acquire(self, key_id: str, interval: int | None, tpm: bool) -> tuple[bool, State, int]:
        db = self._db()
        now = self._clock()
        row = db.execute(_ACQUIRE, {"key": key_id, "now": now, "interval": interval, "tpm": tpm}).fetchone()
        if now - self._pruned > PRUNE_EVERY_US:
            self._pruned = now
            db.execute(_PRUNE, {"now": now})
        return bool(row[0]), State(row[1], row[2]), now

    def _charge(self, key_id: str, cost: int) -> None:
        self._db().execute(_CHARGE, {"key": key_id, "now": self._clock(), "cost": cost})

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
