"""Baseline: the schema Cuirass 0.1.0 made with `metadata.create_all`, before migrations existed.

A database made by that version has these tables but no `alembic_version`. Upgrading it runs this
revision, which checks that the tables it finds match the ones below (and stops, changing nothing, if they
do not) and creates only the ones missing, so such a database is adopted without losing a row. On an
empty database it simply creates everything.

The tables are frozen copies, not imports of the stores: later revisions change the stores' tables, and
this revision must keep describing the 0.1.0 schema.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "accounts",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("org", sa.String(200)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("payment_fingerprint", sa.String(200)),
        sa.Column("allowlisted", sa.Boolean, nullable=False),
    )
    sa.Table(
        "api_keys",
        md,
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("revoked", sa.Float),
        sa.Column("requests_per_min", sa.Integer),
        sa.Column("tokens_per_min", sa.Integer),
    )
    sa.Table("meta", md, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text))
    sa.Table(
        "events",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False, index=True),
        sa.Column("org", sa.String(200)),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.Text),
        sa.Column("payment_fingerprint", sa.String(200)),
        sa.Column("account_created", sa.Float),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("response", sa.JSON),
        sa.Column("action", sa.String(32)),
        sa.Column("status", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("upstream", sa.String(16)),
        sa.Column("actions", sa.JSON),
        sa.Column("shadowed", sa.JSON),
        sa.Column("cohort", sa.String(16)),
    )
    sa.Table(
        "verdicts",
        md,
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("campaign", sa.String(64)),
        sa.Column("first_flagged_ts", sa.Float),
        sa.Column("updated", sa.Float, nullable=False),
    )
    sa.Table(
        "verdict_overrides",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False, index=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("score_at", sa.Float),
        sa.Column("ts", sa.Float, nullable=False),
    )
    sa.Table(
        "campaigns",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("accounts", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    sa.Table(
        "audit_log",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False, index=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    sa.Table(
        "key_epochs",
        md,
        sa.Column("epoch", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    sa.Table(
        "canaries",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
        sa.Column("canary_id", sa.String(64), nullable=False, index=True),
        sa.Column("cohort", sa.String(32), nullable=False, index=True),
        sa.Column("account", sa.String(64), nullable=False, index=True),
        sa.Column("prompt_hash", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("planted_text", sa.Text, nullable=False),
        sa.Column("probe", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
    )
    return md


def upgrade() -> None:
    bind = op.get_bind()
    md = _tables()
    existing = set(sa.inspect(bind).get_table_names())
    found = existing & set(md.tables)
    if found:  # made by create_all: adopt it only if its tables are exactly the 0.1.0 ones
        only_found = {"include_object": lambda _obj, name, kind, _reflected, _other: kind != "table" or name in found}
        diffs = compare_metadata(MigrationContext.configure(bind, opts=only_found), md)
        if diffs:
            raise RuntimeError(
                f"this database's Cuirass tables differ from the 0.1.0 schema, so it was left unchanged: {diffs!r}"
            )
    md.create_all(bind, tables=[t for t in md.sorted_tables if t.name not in existing])


def downgrade() -> None:
    _tables().drop_all(op.get_bind())
