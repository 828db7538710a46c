"""API keys that rotate, and rate-limit buckets shared by API processes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

A rotated tenant keeps its previous key's hash until a grace period ends.
Rate limits are token buckets in a table, so several API processes on one
PostgreSQL database count against the same limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("previous_api_key_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("previous_api_key_prefix", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("previous_key_expires_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("key_rotated_at", UTCDateTime(), nullable=True))
        batch.create_index(
            batch.f("ix_tenants_previous_api_key_hash"), ["previous_api_key_hash"], unique=False
        )
    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket_key", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("bucket_key", name=op.f("pk_rate_limit_buckets")),
    )
    op.create_index(op.f("ix_rate_limit_buckets_updated_at"), "rate_limit_buckets", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_limit_buckets_updated_at"), table_name="rate_limit_buckets")
    op.drop_table("rate_limit_buckets")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_index(batch.f("ix_tenants_previous_api_key_hash"))
        batch.drop_column("key_rotated_at")
        batch.drop_column("previous_key_expires_at")
        batch.drop_column("previous_api_key_prefix")
        batch.drop_column("previous_api_key_hash")
