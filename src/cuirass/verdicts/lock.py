"""One detection service per database: a second `detect watch` on the same store is refused.

Two watchers would score every event twice and race on the verdict store. SQLite: an exclusive file
lock beside the database file (`<db>.watch.lock`, via `filelock`), which the kernel releases when the
holder dies. PostgreSQL: a session-level `pg_try_advisory_lock`, held by one connection kept open for
the watcher's life; if that session is lost (a database restart) the lock is taken again or, if
another watcher got it first, `held` says so and this one stops.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock, Timeout

# The advisory lock's 64-bit key: fixed, so every Cuirass watcher on a database asks for the same one.
PG_KEY = int.from_bytes(hashlib.sha256(b"cuirass detect watch").digest()[:8], "big", signed=True)


class WatcherLock:
    """The lock a detection service holds for as long as it runs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._file: FileLock | None = None
        self._conn: sa.Connection | None = None
        if engine.dialect.name == "sqlite":
            db = engine.url.database
            path = Path(db).resolve() if db and db != ":memory:" else Path(".cuirass-memory.db")
            self.where = f"the lock file {path}.watch.lock"
            self._file = FileLock(f"{path}.watch.lock", mode=0o600, thread_local=False)
        else:
            self.where = f"PostgreSQL advisory lock {PG_KEY}"

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another watcher holds it."""
        if self._file is not None:
            try:
                self._file.acquire(timeout=0)
                return True
            except Timeout:
                return False
        return self._pg_acquire()

    def _pg_acquire(self) -> bool:
        self._pg_drop()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({PG_KEY})").scalar())
        except BaseException:
            conn.close()
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def held(self) -> bool:
        """Whether this watcher still holds the lock (PostgreSQL: its session is alive, or re-taken)."""
        if self._file is not None:
            return self._file.is_locked
        try:
            if self._conn is not None:
                self._conn.exec_driver_sql("SELECT 1")
                return True
        except sa.exc.SQLAlchemyError:
            pass  # the session, and with it the lock, is gone: try to take it again
        try:
            return self._pg_acquire()
        except sa.exc.SQLAlchemyError:
            return True  # the database is away for everyone: nobody else can take the lock meanwhile

    def release(self) -> None:
        if self._file is not None:
            self._file.release()
        self._pg_drop()

    def _pg_drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None
