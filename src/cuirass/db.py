"""One SQLAlchemy engine per database URL: SQLite (embedded default, WAL) or PostgreSQL (scale-out).

SQLAlchemy Core is used, not an ORM: the gateway needs a handful of tables and the same statements on
both backends, and Core gives exactly that with no per-row object overhead.

This is the lowest storage module and knows no feature: each store defines its tables on `metadata`,
`cuirass.storage.schema` lists them, and `cuirass.storage.migrate.make_engine` creates or upgrades them.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import sqlalchemy as sa

from cuirass.secret_file import owner_only, private_dir

metadata = sa.MetaData()


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _private_sqlite_files(database: str) -> None:
    """The database holds full prompts: its directory is created 0700 and the file 0600 before SQLite opens
    it (SQLite gives the -wal and -shm files the database's mode); files from a laxer past are tightened."""
    if not database or database.startswith((":memory:", "file:")):
        return
    path = Path(database.split("?", 1)[0])
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            owner_only(p)


def open_engine(url: str) -> sa.Engine:
    """An engine with Cuirass's JSON codec and SQLite settings; it creates no tables (see `storage.migrate`)."""
    if url.startswith("sqlite:///"):
        _private_sqlite_files(url.removeprefix("sqlite:///"))
        engine = sa.create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the event writer
            cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
            cur.execute("PRAGMA busy_timeout=30000")  # several gateway workers share one file
            cur.close()
    else:
        engine = sa.create_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads, pool_pre_ping=True)
    return engine
