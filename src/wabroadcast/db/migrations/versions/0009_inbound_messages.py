"""inbound messages: what people send to our sessions' numbers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Providers that report incoming messages (the Baileys gateway) have them stored
here, once per session and provider message id, for reply tracking and opt-outs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=False),
        sa.Column("from_phone", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "uq_inbound_messages_session_id_provider_message_id",
            ["session_id", "provider_message_id"],
            unique=True,
        )
        batch_op.create_index(
            "ix_inbound_messages_tenant_id_from_phone", ["tenant_id", "from_phone"], unique=False
        )


def downgrade() -> None:
    op.drop_table("inbound_messages")
