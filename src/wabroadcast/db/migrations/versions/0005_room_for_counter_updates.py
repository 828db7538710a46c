"""room on each page for updates of the rows a running broadcast rewrites constantly

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

A running broadcast's row has its counters moved with every batch of results
(several times a second), and a lease row is renewed every few seconds. None of
those columns is indexed, so PostgreSQL can update the row in place on its page
(a "HOT" update: no new entry in any of the broadcast's seven indexes) - but
only if the page has room for the new version. Packed full, as PostgreSQL fills
pages by default, it had none: in a 1,000-session run, 88 % of the counter
updates went to another page and added an entry to every index (measured with
pg_stat_user_tables), so the tables and indexes grew with every batch and each
later statement read more of them. Half-full pages leave that room; the old
versions are pruned from a page as it is reused, without waiting for VACUUM.

Pages written from now on keep the room; existing rows move as they are updated.
SQLite has no such setting and needs none.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("whatsapp_broadcasts", "session_leases")
FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
