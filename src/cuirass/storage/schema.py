"""The one list of Cuirass's tables.

Each store defines its own tables on the shared `cuirass.db.metadata`; this module imports them so the
metadata is complete. Migrations (autogenerate, and the check that a database matches its head) and
`cuirass.storage.migrate` read the schema from here; nothing below the stores needs to know them.
"""

from __future__ import annotations

import sqlalchemy as sa

from cuirass.accounts.store import accounts_table, keys_table, meta_table
from cuirass.audit_log import audit_table
from cuirass.db import metadata
from cuirass.events.store import events_table
from cuirass.marks.canary_ledger import canaries_table
from cuirass.marks.epochs import epochs_table
from cuirass.verdicts.shards import accounts_table as detect_accounts_table
from cuirass.verdicts.shards import jobs_table, partitions_table, rows_table
from cuirass.verdicts.store import campaigns_table, overrides_table, verdicts_table

TABLES: tuple[sa.Table, ...] = (
    accounts_table,
    keys_table,
    meta_table,
    events_table,
    verdicts_table,
    overrides_table,
    campaigns_table,
    audit_table,
    epochs_table,
    canaries_table,
    partitions_table,
    detect_accounts_table,
    rows_table,
    jobs_table,
)


def target_metadata() -> sa.MetaData:
    """The metadata migrations compare against; fails if a store registered a table not listed above."""
    unlisted = set(metadata.tables) - {t.name for t in TABLES}
    if unlisted:
        raise RuntimeError(f"tables missing from cuirass.storage.schema.TABLES: {sorted(unlisted)}")
    return metadata
