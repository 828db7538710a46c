"""Personal messages: each recipient's own text, what recipients lacked, what was sent

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

A personal message (``{{name}}``) is rendered per recipient when the broadcast is
accepted; the text is stored with the recipient, so what is shown is what is sent.
The simulator records the text it was asked to deliver.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.add_column(sa.Column("missing_variables", sa.JSON(), nullable=True))
    with op.batch_alter_table("whatsapp_broadcast_recipients") as batch:
        batch.add_column(sa.Column("rendered_message", sa.Text(), nullable=True))
    with op.batch_alter_table("simulator_sends") as batch:
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("simulator_sends") as batch:
        batch.drop_column("text")
    with op.batch_alter_table("whatsapp_broadcast_recipients") as batch:
        batch.drop_column("rendered_message")
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.drop_column("missing_variables")
