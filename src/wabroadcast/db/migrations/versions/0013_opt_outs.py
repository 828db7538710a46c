"""Opt-outs: numbers a tenant must not message, and recipients skipped for them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

A tenant keeps one list of numbers (E.164) that asked not to be messaged, added
through the API, a CSV import or a stop word in an inbound message. A new
broadcast leaves them out and reports how many; a queued recipient whose number
opts out later becomes ``skipped``, counted in ``skipped_count``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wabroadcast.db.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "whatsapp_opt_outs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_whatsapp_opt_outs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_opt_outs")),
        sa.UniqueConstraint(
            "tenant_id", "phone", name=op.f("uq_whatsapp_opt_outs_tenant_id_phone")
        ),
    )
    with op.batch_alter_table("whatsapp_opt_outs") as batch:
        batch.create_index("ix_whatsapp_opt_outs_tenant_id_id", ["tenant_id", "id"], unique=False)
    with op.batch_alter_table("tenants") as batch:
        # The tenant's stop words (None: the defaults).
        batch.add_column(sa.Column("stop_words", sa.JSON(), nullable=True))
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.add_column(
            sa.Column("skipped_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("opted_out_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("opted_out", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_broadcasts") as batch:
        batch.drop_column("opted_out")
        batch.drop_column("opted_out_count")
        batch.drop_column("skipped_count")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("stop_words")
    op.drop_table("whatsapp_opt_outs")
