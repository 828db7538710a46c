"""All SQL about tenants."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import Tenant


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_tenant(self, tenant: Tenant) -> Tenant:
        self.session.add(tenant)
        await self.session.flush()
        return tenant

    async def by_api_key_hash(self, key_hash: str) -> Tenant | None:
        result = await self.session.execute(select(Tenant).where(Tenant.api_key_hash == key_hash))
        return result.scalar_one_or_none()

    async def get(self, tenant_id: int) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)
