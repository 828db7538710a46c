"""All SQL about tenants."""

from __future__ import annotations

from datetime import datetime

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

    async def by_api_key_hash(self, key_hash: str, now: datetime) -> Tenant | None:
        """The tenant whose current key, or previous key still in its grace period, this is."""
        result = await self.session.execute(select(Tenant).where(Tenant.api_key_hash == key_hash))
        tenant = result.scalar_one_or_none()
        if tenant is not None:
            return tenant
        result = await self.session.execute(
            select(Tenant).where(
                Tenant.previous_api_key_hash == key_hash, Tenant.previous_key_expires_at > now
            )
        )
        return result.scalar_one_or_none()

    async def get(self, tenant_id: int) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def get_for_update(self, tenant_id: int) -> Tenant | None:
        """The tenant, its row locked until the transaction ends (PostgreSQL; a SQLite
        write transaction holds the whole file already), so two rotations queue up."""
        result = await self.session.execute(
            select(Tenant).where(Tenant.id == tenant_id).with_for_update()
        )
        return result.scalar_one_or_none()

    async def replace_api_key(
        self,
        tenant: Tenant,
        *,
        key_hash: str,
        key_prefix: str,
        previous_hash: str | None,
        previous_prefix: str | None,
        previous_expires_at: datetime | None,
        rotated_at: datetime,
    ) -> Tenant:
        tenant.api_key_hash = key_hash
        tenant.api_key_prefix = key_prefix
        tenant.previous_api_key_hash = previous_hash
        tenant.previous_api_key_prefix = previous_prefix
        tenant.previous_key_expires_at = previous_expires_at
        tenant.key_rotated_at = rotated_at
        await self.session.flush()
        return tenant

    async def list_all(self) -> list[Tenant]:
        """Every tenant, oldest first."""
        result = await self.session.execute(select(Tenant).order_by(Tenant.id))
        return list(result.scalars())
