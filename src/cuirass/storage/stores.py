"""The stores of a deployment, opened from its settings: the database brought to head, the data directory's secrets."""

from __future__ import annotations

import sqlalchemy as sa

from cuirass.accounts import AccountStore, KeyHasher
from cuirass.config import Settings
from cuirass.events.log import EVENT_LOGS, EventLog
from cuirass.events.store import SqlEventLog
from cuirass.storage.migrate import make_engine
from cuirass.verdicts.source import VERDICT_SOURCES, VerdictSource
from cuirass.verdicts.store import VerdictStore

# Checked by mypy: the SQL implementations satisfy the interfaces their callers hold.
_SQL: tuple[type[EventLog], type[VerdictSource]] = (SqlEventLog, VerdictStore)


def open_store(settings: Settings) -> AccountStore:
    """The account store of a deployment: its database, with the key hasher of its data directory."""
    return AccountStore(make_engine(settings.database_url), KeyHasher.for_data_dir(settings.data_dir))


def open_event_log(engine: sa.Engine, name: str = SqlEventLog.name) -> EventLog:
    """The event log registered under `name` in `cuirass.events.log.EVENT_LOGS` ("sql", the only one now)."""
    log: EventLog = EVENT_LOGS[name](engine)
    return log


def open_verdict_source(engine: sa.Engine, name: str = VerdictStore.name) -> VerdictSource:
    """The verdict source registered under `name` in `cuirass.verdicts.source.VERDICT_SOURCES` ("sql" now)."""
    source: VerdictSource = VERDICT_SOURCES[name](engine)
    return source
