"""All SQL about tenants and their WhatsApp sessions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import Tenant, WhatsAppSession


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_tenant(self, tenant: Tenant) -> Tenant:
        self.session.add(tenant)
        await self.session.flush()
        return tenant

    async def add_session(self, wa_session: WhatsAppSession) -> WhatsAppSession:
        self.session.add(wa_session)
        await self.session.flush()
        return wa_session

    async def by_api_key_hash(self, key_hash: str) -> Tenant | None:
        result = await self.session.execute(select(Tenant).where(Tenant.api_key_hash == key_hash))
        return result.scalar_one_or_none()

    async def get_session(self, tenant_id: int, session_id: str) -> WhatsAppSession | None:
        result = await self.session.execute(
            select(WhatsAppSession).where(
                WhatsAppSession.tenant_id == tenant_id, WhatsAppSession.id == session_id
            )
        )
        return result.scalar_one_or_none()

    async def get_session_by_id(self, session_id: str) -> WhatsAppSession | None:
        return await self.session.get(WhatsAppSession, session_id)

    async def default_session(self, tenant_id: int) -> WhatsAppSession | None:
        result = await self.session.execute(
            select(WhatsAppSession)
            .where(WhatsAppSession.tenant_id == tenant_id, WhatsAppSession.is_default.is_(True))
            .order_by(WhatsAppSession.created_at)
            .limit(1)
        )
        return result.scalar_one_or_none()
