"""Account safety: daily caps and warm-up, quiet hours, number checks, STOP replies

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

A session may send at most its day's cap (``session_daily_sends`` counts its
sends per calendar day of the tenant's time zone, shared by every worker); a
tenant or a broadcast may forbid sends in quiet hours, in the tenant's zone or
each recipient's (``time_zone``, from the number's country, filled at
acceptance only when a broadcast asks for it); a number the provider says is not
on WhatsApp is remembered per tenant (``number_checks``) and never sent to; a
number that opted out by a stop word may be answered once (``reply_status``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC")
        )
        batch.add_column(sa.Column("quiet_hours", sa.String(16), nullable=True))
        batch.add_column(sa.Column("opt_out_reply", sa.Text(), nullable=True))
    with op.batch_alter_table("whatsapp_sessions") as batch:
        batch.add_column(sa.Column("daily_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("warmup_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("warmup_start_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("warmup_growth", sa.Float(), nullable=True))
        batch.add_column(sa.Column("warmup_started_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("pause_error_rate", sa.Float(), nullable=True))
        batch.add_column(sa.Column("check_numbers", sa.Boolean(), nullable=True))
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.add_column(sa.Column("quiet_hours", sa.String(16), nullable=True))
        batch.add_column(sa.Column("quiet_hours_zone", sa.String(16), nullable=True))
    with op.batch_alter_table("whatsapp_broadcast_recipients") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=True))
    with op.batch_alter_table("whatsapp_opt_outs") as batch:
        batch.add_column(sa.Column("session_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reply_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reply_at", UTCDateTime(), nullable=True))
        batch.create_index(
            "ix_whatsapp_opt_outs_reply_status",
            ["reply_status"],
            unique=False,
            postgresql_where=sa.text("reply_status = 'due'"),
            sqlite_where=sa.text("reply_status = 'due'"),
        )
    op.create_table(
        "session_daily_sends",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("session_id", "day", name=op.f("pk_session_daily_sends")),
    )
    op.create_table(
        "number_checks",
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("on_whatsapp", sa.Boolean(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "phone", name=op.f("pk_number_checks")),
    )


def downgrade() -> None:
    op.drop_table("number_checks")
    op.drop_table("session_daily_sends")
    with op.batch_alter_table("whatsapp_opt_outs") as batch:
        batch.drop_index("ix_whatsapp_opt_outs_reply_status")
        batch.drop_column("reply_at")
        batch.drop_column("reply_status")
        batch.drop_column("session_id")
    with op.batch_alter_table("whatsapp_broadcast_recipients") as batch:
        batch.drop_column("time_zone")
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.drop_column("quiet_hours_zone")
        batch.drop_column("quiet_hours")
    with op.batch_alter_table("whatsapp_sessions") as batch:
        for column in (
            "check_numbers",
            "pause_error_rate",
            "warmup_started_at",
            "warmup_growth",
            "warmup_start_cap",
            "warmup_days",
            "daily_cap",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("opt_out_reply")
        batch.drop_column("quiet_hours")
        batch.drop_column("time_zone")
