"""dispatch: leases, simulator sends

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wabroadcast.db.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "simulator_sends",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("client_message_id", sa.String(length=64), nullable=False),
        sa.Column("provider_message_id", sa.String(length=64), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("started_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deliver_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "receipt_sent_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulator_sends")),
    )
    with op.batch_alter_table("simulator_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_simulator_sends_in_flight",
            ["session_id", "started_at"],
            unique=False,
            postgresql_where=sa.text("finished_at IS NULL"),
            sqlite_where=sa.text("finished_at IS NULL"),
        )
        batch_op.create_index(
            "ix_simulator_sends_receipt_due",
            ["deliver_at"],
            unique=False,
            postgresql_where=sa.text("receipt_sent_at IS NULL AND deliver_at IS NOT NULL"),
            sqlite_where=sa.text("receipt_sent_at IS NULL AND deliver_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_simulator_sends_session_id_id", ["session_id", "id"], unique=False
        )
        batch_op.create_index(
            "uq_simulator_sends_original_client_message_id",
            ["session_id", "client_message_id"],
            unique=True,
            postgresql_where=sa.text("NOT repeat"),
            sqlite_where=sa.text("NOT repeat"),
        )

    op.create_table(
        "session_leases",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["whatsapp_sessions.id"],
            name=op.f("fk_session_leases_session_id_whatsapp_sessions"),
        ),
        sa.PrimaryKeyConstraint("session_id", "slot", name=op.f("pk_session_leases")),
    )
    with op.batch_alter_table("simulator_scenarios", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("in_flight_high_water_mark", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("whatsapp_broadcasts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_whatsapp_broadcasts_status_session_id", ["status", "session_id"], unique=False
        )

    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_epoch_seq", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.drop_column("lease_epoch_seq")

    with op.batch_alter_table("whatsapp_broadcasts", schema=None) as batch_op:
        batch_op.drop_index("ix_whatsapp_broadcasts_status_session_id")

    with op.batch_alter_table("simulator_scenarios", schema=None) as batch_op:
        batch_op.drop_column("in_flight_high_water_mark")

    op.drop_table("session_leases")
    with op.batch_alter_table("simulator_sends", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_simulator_sends_original_client_message_id",
            postgresql_where=sa.text("NOT repeat"),
            sqlite_where=sa.text("NOT repeat"),
        )
        batch_op.drop_index("ix_simulator_sends_session_id_id")
        batch_op.drop_index(
            "ix_simulator_sends_receipt_due",
            postgresql_where=sa.text("receipt_sent_at IS NULL AND deliver_at IS NOT NULL"),
            sqlite_where=sa.text("receipt_sent_at IS NULL AND deliver_at IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_simulator_sends_in_flight",
            postgresql_where=sa.text("finished_at IS NULL"),
            sqlite_where=sa.text("finished_at IS NULL"),
        )

    op.drop_table("simulator_sends")
