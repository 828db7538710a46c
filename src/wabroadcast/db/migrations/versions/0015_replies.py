"""Replies: a recipient who wrote back within the reply window of our send

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

An inbound message from a number a broadcast sent to within the window marks
that recipient (``replied_at``, its first reply's text) and counts in the
broadcast's ``reply_count``. The partial index finds a tenant's recent sends
to a number; rows not sent yet (a new broadcast's COPY) add no entries to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENT = sa.text("sent_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcast_recipients") as batch:
        batch.add_column(sa.Column("replied_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("reply_text", sa.Text(), nullable=True))
        batch.create_index(
            "ix_whatsapp_broadcast_recipients_tenant_id_phone_sent_at",
            ["tenant_id", "phone", "sent_at"],
            unique=False,
            postgresql_where=SENT,
            sqlite_where=SENT,
        )
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.add_column(sa.Column("reply_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.drop_column("reply_count")
    with op.batch_alter_table("whatsapp_broadcast_recipients") as batch:
        batch.drop_index("ix_whatsapp_broadcast_recipients_tenant_id_phone_sent_at")
        batch.drop_column("reply_text")
        batch.drop_column("replied_at")
