"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wabroadcast.db.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_prefix", sa.String(length=16), nullable=False),
        sa.Column("default_region", sa.String(length=2), nullable=False),
        sa.Column("created_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_tenants_api_key_hash")),
    )
    op.create_table(
        "whatsapp_broadcast_recipients",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "broadcast_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("raw_input", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_epoch", sa.BigInteger(), nullable=True),
        sa.Column(
            "lease_expires_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("client_message_id", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("queued_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("read_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_broadcast_recipients")),
        sa.UniqueConstraint(
            "broadcast_id",
            "phone",
            name=op.f("uq_whatsapp_broadcast_recipients_broadcast_id_phone"),
        ),
    )
    with op.batch_alter_table("whatsapp_broadcast_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_whatsapp_broadcast_recipients_broadcast_status_id",
            ["broadcast_id", "status", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_whatsapp_broadcast_recipients_provider_message_id",
            ["provider_message_id"],
            unique=False,
            postgresql_where=sa.text("provider_message_id IS NOT NULL"),
            sqlite_where=sa.text("provider_message_id IS NOT NULL"),
        )

    op.create_table(
        "idempotency_requests",
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("broadcast_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_idempotency_requests_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_idempotency_requests")),
    )
    with op.batch_alter_table("idempotency_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_requests_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "whatsapp_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("rate_per_minute", sa.Float(), nullable=True),
        sa.Column("jitter_ms", sa.Integer(), nullable=True),
        sa.Column("next_send_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("webhook_secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_whatsapp_sessions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_sessions")),
    )
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_whatsapp_sessions_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "simulator_scenarios",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("status_delay_ms", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("fail_numbers", sa.JSON(), nullable=False),
        sa.Column("fail_rate", sa.Float(), nullable=False),
        sa.Column("deliver_after_ms", sa.Integer(), nullable=True),
        sa.Column("updated_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["whatsapp_sessions.id"],
            name=op.f("fk_simulator_scenarios_session_id_whatsapp_sessions"),
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_simulator_scenarios")),
    )
    op.create_table(
        "whatsapp_broadcasts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("connection_check", sa.String(length=16), nullable=False),
        sa.Column("total_recipients", sa.Integer(), nullable=False),
        sa.Column("invalid_recipients_count", sa.Integer(), nullable=False),
        sa.Column("duplicates_removed", sa.Integer(), nullable=False),
        sa.Column("invalid_recipients", sa.JSON(), nullable=False),
        sa.Column("queued_count", sa.Integer(), nullable=False),
        sa.Column("sending_count", sa.Integer(), nullable=False),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("delivered_count", sa.Integer(), nullable=False),
        sa.Column("read_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("cancelled_count", sa.Integer(), nullable=False),
        sa.Column("created_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["whatsapp_sessions.id"],
            name=op.f("fk_whatsapp_broadcasts_session_id_whatsapp_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_whatsapp_broadcasts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_broadcasts")),
    )
    with op.batch_alter_table("whatsapp_broadcasts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_whatsapp_broadcasts_idempotency_key"), ["idempotency_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_whatsapp_broadcasts_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(
            "ix_whatsapp_broadcasts_tenant_id_created_at", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_whatsapp_broadcasts_tenant_id_id", ["tenant_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_whatsapp_broadcasts_tenant_id_status_id",
            ["tenant_id", "status", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcasts", schema=None) as batch_op:
        batch_op.drop_index("ix_whatsapp_broadcasts_tenant_id_status_id")
        batch_op.drop_index("ix_whatsapp_broadcasts_tenant_id_id")
        batch_op.drop_index("ix_whatsapp_broadcasts_tenant_id_created_at")
        batch_op.drop_index(batch_op.f("ix_whatsapp_broadcasts_session_id"))
        batch_op.drop_index(batch_op.f("ix_whatsapp_broadcasts_idempotency_key"))

    op.drop_table("whatsapp_broadcasts")
    op.drop_table("simulator_scenarios")
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_whatsapp_sessions_tenant_id"))

    op.drop_table("whatsapp_sessions")
    with op.batch_alter_table("idempotency_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_requests_expires_at"))

    op.drop_table("idempotency_requests")
    with op.batch_alter_table("whatsapp_broadcast_recipients", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_whatsapp_broadcast_recipients_provider_message_id",
            postgresql_where=sa.text("provider_message_id IS NOT NULL"),
            sqlite_where=sa.text("provider_message_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_whatsapp_broadcast_recipients_broadcast_status_id")

    op.drop_table("whatsapp_broadcast_recipients")
    op.drop_table("tenants")
