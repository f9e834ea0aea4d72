"""Schema migrations (Alembic): every engine Cuirass opens is brought to the newest schema first.

The migration scripts ship inside the package (`cuirass/storage/migrations`) and the Alembic Config is
built here, so operators need no alembic.ini. Starting on:
- an empty database: the migrations create every table;
- a database made by Cuirass 0.1.0's `create_all` (tables, no `alembic_version`): the baseline revision
  checks the tables match and adopts them, then later revisions run;
- a database at an older revision: the newer revisions run.

Several gateway workers and `detect watch` may start at once on one database, so the upgrade runs under
a lock, in one transaction: `pg_advisory_xact_lock` on PostgreSQL; on SQLite a file lock beside the
database (waits however long the upgrade takes) and BEGIN IMMEDIATE (nothing else writes meanwhile, and a
crash leaves the old schema, not half of the new one). A database already at head takes only the SQLite
file lock, briefly, around its first connection.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from filelock import FileLock

from cuirass.db import open_engine

SCRIPT_LOCATION = "cuirass.storage:migrations"
_PG_LOCK_ID = 0x6375_6D67  # PostgreSQL advisory lock serialising upgrades ("cumg"; the audit log uses "cuir")


def make_engine(url: str) -> sa.Engine:
    """An engine for `url` whose database is at the newest schema (created or upgraded here if needed)."""
    engine = open_engine(url)
    upgrade(engine)
    return engine


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's Config for Cuirass's migrations; env.py runs them on `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision the installed Cuirass knows."""
    rev = _script().get_current_head()
    assert rev is not None, "cuirass/storage/migrations has no revisions"
    return rev


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at; None for one never migrated (empty, or made by create_all)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def status(engine: sa.Engine) -> dict[str, Any]:
    """Where the database stands: its revision, the head, and the revisions an upgrade would run (oldest first).

    `known` is false when a newer Cuirass has migrated the database past what this one knows.
    """
    script, at = _script(), current(engine)
    known = _knows(script, at)
    pending = [r.revision for r in script.iterate_revisions("heads", at or "base")][::-1] if known else []
    return {
        "database": engine.url.render_as_string(hide_password=True),
        "current": at,
        "head": script.get_current_head(),
        "pending": pending,
        "up_to_date": known and not pending,
        "known": known,
    }


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to head; safe to call from several processes at once.

    Raises RuntimeError for a database this Cuirass must not touch: one a newer Cuirass has migrated, or
    one whose tables differ from the baseline it would adopt.
    """
    # SQLite: the whole start, first connection included, under the file lock: a fresh file's first
    # connections switch it to WAL, and one that does so beside another's open transaction gets "database
    # is locked" at once, whatever the busy timeout (seen with four processes starting together).
    with _sqlite_file_lock(engine):
        script, at = _script(), current(engine)
        if at == script.get_current_head():
            return  # the common start: nothing to do
        if not _knows(script, at):
            raise RuntimeError(
                f"the database is at schema revision {at}, newer than this Cuirass knows "
                f"({script.get_current_head()}): run the newer Cuirass, or restore a backup"
            )
        with _exclusive(engine) as conn:  # alembic re-reads the revision under the lock: another may have upgraded
            command.upgrade(alembic_config(conn), "head")


def _file_database(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


@contextlib.contextmanager
def _sqlite_file_lock(engine: sa.Engine) -> Iterator[None]:
    if not _file_database(engine):
        yield
        return
    # The same lock library as the watcher's lock (verdicts/lock.py); released by the kernel if the process dies.
    with FileLock(f"{engine.url.database}.migrate.lock", mode=0o600, thread_local=False):
        yield


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _knows(script: ScriptDirectory, revision: str | None) -> bool:
    try:
        return revision is None or script.get_revision(revision) is not None
    except CommandError:
        return False


def new_revision(message: str) -> str:
    """Write a revision autogenerated from the difference between head and `schema.TABLES`; returns its path.

    For developers, in a source checkout: review the file it writes before committing it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/scratch.db")
        try:
            with engine.connect() as conn:
                rev_id = f"{int(head()) + 1:04d}"
                script = command.revision(alembic_config(conn), message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return str(script.path)


@contextlib.contextmanager
def _exclusive(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that no other upgrade of this database runs beside; commits on exit."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
            yield conn
    elif _file_database(engine):  # the caller holds the file lock (upgrade)
        serial = open_engine(engine.url.render_as_string(hide_password=False))
        # The driver's own transaction handling skips DDL; take it over so BEGIN IMMEDIATE covers it all.
        sa.event.listen(serial, "connect", lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None))
        sa.event.listen(serial, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            with serial.connect() as conn, conn.begin():
                yield conn
        finally:
            serial.dispose()
    else:  # another dialect, or an in-memory SQLite database (one process only)
        with engine.connect() as conn, conn.begin():
            yield conn
