"""Detector shards: per-partition checkpoints, account states, campaign rows and campaign jobs (new tables only).

No existing table changes, so no row of an older database is touched; `downgrade` drops the four tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 10:48:36.056187
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detect_accounts",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "partition", "account"),
    )
    op.create_table(
        "detect_jobs",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("now", sa.Float(), nullable=False),
        sa.Column("next_ts", sa.Float(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("leader", sa.LargeBinary(), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "id"),
    )
    op.create_table(
        "detect_partitions",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("job", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.Integer(), nullable=False),
        sa.Column("arrival", sa.Float(), nullable=True),
        sa.Column("caught_up", sa.Boolean(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "partition"),
    )
    op.create_table(
        "detect_rows",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("row", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "partition", "account"),
    )


def downgrade() -> None:
    op.drop_table("detect_rows")
    op.drop_table("detect_partitions")
    op.drop_table("detect_jobs")
    op.drop_table("detect_accounts")
