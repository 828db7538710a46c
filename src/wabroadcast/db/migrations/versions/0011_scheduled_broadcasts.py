"""Scheduled broadcasts: the time a broadcast is queued at

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A broadcast accepted with ``send_at`` waits as ``scheduled`` until then; the
dispatcher queues it once the time has come.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.add_column(sa.Column("send_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.drop_column("send_at")
