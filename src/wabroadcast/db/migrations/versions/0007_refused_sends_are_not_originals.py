"""a send WhatsApp refused is not the original of its client message id

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

A broadcast paused by an account-level error was resumed and completed, but the
number that had met the error was never delivered: its hold gave the attempt
back, so the next send reused its client message id, and the simulator took that
send for a repeat of the refused one (acknowledged, not delivered). Only a send
that WhatsApp accepted, or that is still in flight, is an original now; the
unique index of originals says the same, so a refused send's id can be sent
again as a first send. Downgrading fails once such an id was sent again (two
sends of one id that are not repeats), which the old index cannot hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_simulator_sends_original_client_message_id"
COLUMNS = ["session_id", "client_message_id"]
BEFORE = "NOT repeat"
AFTER = "NOT repeat AND (outcome IS NULL OR outcome = 'sent')"


def _replace(old: str, new: str) -> None:
    with op.batch_alter_table("simulator_sends", schema=None) as batch_op:
        batch_op.drop_index(INDEX, postgresql_where=sa.text(old), sqlite_where=sa.text(old))
        batch_op.create_index(
            INDEX,
            COLUMNS,
            unique=True,
            postgresql_where=sa.text(new),
            sqlite_where=sa.text(new),
        )


def upgrade() -> None:
    _replace(BEFORE, AFTER)


def downgrade() -> None:
    _replace(AFTER, BEFORE)
