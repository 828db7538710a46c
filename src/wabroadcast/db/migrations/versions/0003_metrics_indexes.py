"""metrics: per-tenant indexes on when recipients were sent, delivered, failed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Partial indexes (only rows where the event happened), so creating a broadcast,
whose recipient rows all have these columns NULL, adds no entries to them. On
PostgreSQL they are built CONCURRENTLY, outside the migration's transaction,
so a deployment with millions of recipient rows keeps sending while they build.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "whatsapp_broadcast_recipients"
COLUMNS = ("sent_at", "delivered_at", "failed_at")


def _name(column: str) -> str:
    return f"ix_whatsapp_broadcast_recipients_tenant_id_{column}"


def _on_postgresql() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def upgrade() -> None:
    if _on_postgresql():
        with op.get_context().autocommit_block():
            for column in COLUMNS:
                op.create_index(
                    _name(column),
                    TABLE,
                    ["tenant_id", column],
                    unique=False,
                    postgresql_where=sa.text(f"{column} IS NOT NULL"),
                    postgresql_concurrently=True,
                )
        return
    for column in COLUMNS:
        op.create_index(
            _name(column),
            TABLE,
            ["tenant_id", column],
            unique=False,
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    if _on_postgresql():
        with op.get_context().autocommit_block():
            for column in COLUMNS:
                op.drop_index(_name(column), table_name=TABLE, postgresql_concurrently=True)
        return
    for column in COLUMNS:
        op.drop_index(_name(column), table_name=TABLE)
