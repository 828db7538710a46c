"""The database reads of the readiness probe."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession


def _heads(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


class HealthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def applied_revisions(self) -> tuple[str, ...]:
        """The migration revisions the schema is at; empty when it was never migrated."""
        connection = await self.session.connection()
        return await connection.run_sync(_heads)
