"""Webhooks to the CRM: subscriptions, the outbox of deliveries and their attempts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

A tenant subscribes an endpoint to some events. Each event it wants is written to
``webhook_deliveries`` in the transaction of the change it reports, so a process
that dies loses none; workers deliver them, signed, and keep each try.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_subscriptions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.create_index("ix_webhook_subscriptions_tenant_id_id", ["tenant_id", "id"])
    op.create_table(
        "webhook_subscription_events",
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_subscription_events_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "event_type",
            "subscription_id",
            name=op.f("pk_webhook_subscription_events"),
        ),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("subscription_id", BigId, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("broadcast_id", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.create_index(
            "ix_webhook_deliveries_due",
            ["next_attempt_at"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )
        batch.create_index(
            "ix_webhook_deliveries_pending_chain",
            ["subscription_id", "broadcast_id", "id"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )
        batch.create_index("ix_webhook_deliveries_subscription_id_id", ["subscription_id", "id"])
    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("delivery_id", BigId, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_delivery_attempts_delivery_id_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery_attempts")),
    )
    with op.batch_alter_table("webhook_delivery_attempts") as batch:
        batch.create_index("ix_webhook_delivery_attempts_delivery_id_id", ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_delivery_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscription_events")
    op.drop_table("webhook_subscriptions")
