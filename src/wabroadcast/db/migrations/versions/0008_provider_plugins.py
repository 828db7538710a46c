"""providers as plug-ins: encrypted session config, webhook keys, templates, early receipts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

A session's provider config keeps its plain fields in ``config`` and its
secrets in ``secret_config`` (a Fernet token). ``webhook_key`` is what a
provider's webhooks name the session by, unique per provider; the sessions
that exist are all simulator sessions, whose key is their id. Broadcasts may
carry a provider template. Receipts that arrive before their send is recorded
wait in ``pending_receipts``. A deleted session is kept (``deleted_at``) for the
history of its broadcasts.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_config", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("deleted_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE whatsapp_sessions SET webhook_key = id WHERE provider = 'simulator'")
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_whatsapp_sessions_provider_webhook_key", ["provider", "webhook_key"], unique=True
        )
    with op.batch_alter_table("whatsapp_broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template", sa.JSON(), nullable=True))
    op.create_table(
        "pending_receipts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_receipts")),
    )
    with op.batch_alter_table("pending_receipts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pending_receipts_session_id_provider_message_id",
            ["session_id", "provider_message_id"],
            unique=False,
        )
        batch_op.create_index("ix_pending_receipts_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_table("pending_receipts")
    with op.batch_alter_table("whatsapp_broadcasts", schema=None) as batch_op:
        batch_op.drop_column("template")
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.drop_index("uq_whatsapp_sessions_provider_webhook_key")
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("webhook_key")
        batch_op.drop_column("secret_config")
