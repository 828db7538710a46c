"""when the simulated WhatsApp answers each send

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

A send counted as in flight until its end was logged, or for 11 minutes when it
never was (its worker killed mid-send). A worker that took over the dead one's
slot 15 s later then seemed to exceed the session's concurrency: after two kill
-9s of a session's workers with max_concurrency 2, the high-water mark read 4,
though no two sends' logged times overlapped beyond 2. With the time WhatsApp
answers each send recorded, a send whose end never comes stops counting shortly
after it. Sends logged before this column keep the 11-minute window.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wabroadcast.db.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("simulator_sends", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "answer_due_at", wabroadcast.db.models.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("simulator_sends", schema=None) as batch_op:
        batch_op.drop_column("answer_due_at")
