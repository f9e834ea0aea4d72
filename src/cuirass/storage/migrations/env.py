"""Alembic's entry point: run the migrations on the connection, or else the URL, set in the Config's attributes.

`cuirass.storage.migrate` builds the Config in code (no alembic.ini) and passes a connection that already
holds the upgrade lock, inside the one transaction the whole upgrade runs in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from cuirass.db import open_engine
from cuirass.storage.schema import target_metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        render_as_batch=True,  # SQLite alters a table by copying it; batch mode writes that for autogenerate
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("Cuirass's migrations run against a live database; offline (--sql) mode is not supported")

_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    _url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not _url:
        raise RuntimeError("set Config.attributes['connection'] or ['url'] before running Cuirass's migrations")
    _engine = open_engine(_url)
    try:
        with _engine.connect() as _conn:
            _run(_conn)
            _conn.commit()
    finally:
        _engine.dispose()
