"""One SQLAlchemy engine per database URL: SQLite (embedded default, WAL) or PostgreSQL (scale-out).

SQLAlchemy Core is used, not an ORM: the gateway needs a handful of tables and the same statements on
both backends, and Core gives exactly that with no per-row object overhead.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import sqlalchemy as sa

metadata = sa.MetaData()


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str) -> sa.Engine:
    """Create the engine and every table registered on `metadata` (idempotent)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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
        engine = sa.create_engine(
            url, json_serializer=_json_dumps, json_deserializer=orjson.loads, pool_pre_ping=True
        )
    # Import the modules that own tables so they are registered before create_all.
    import cuirass.accounts.store  # noqa: F401
    import cuirass.events.store  # noqa: F401
    import cuirass.audit_log  # noqa: F401
    import cuirass.prove.epochs  # noqa: F401
    import cuirass.marks.canary_ledger  # noqa: F401
    import cuirass.verdicts.store  # noqa: F401

    metadata.create_all(engine)
    return engine
