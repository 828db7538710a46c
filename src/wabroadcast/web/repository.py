"""All SQL about dashboard sign-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import DashboardSession, Tenant


class DashboardSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: DashboardSession) -> None:
        self.session.add(row)
        await self.session.flush()

    async def live(self, token_hash: str, now: datetime) -> tuple[DashboardSession, Tenant] | None:
        """The unexpired session with this token hash, and its tenant."""
        result = await self.session.execute(
            select(DashboardSession, Tenant)
            .join(Tenant, Tenant.id == DashboardSession.tenant_id)
            .where(DashboardSession.token_hash == token_hash, DashboardSession.expires_at > now)
        )
        row = result.first()
        return None if row is None else (row[0], row[1])

    async def delete(self, token_hash: str) -> None:
        await self.session.execute(
            delete(DashboardSession).where(DashboardSession.token_hash == token_hash)
        )

    async def purge_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            delete(DashboardSession).where(DashboardSession.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0))
