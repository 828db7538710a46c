"""All SQL about WhatsApp sessions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppSession
from wabroadcast.domain.status import FINAL_BROADCAST_STATUSES

S = WhatsAppSession
LIVE = S.deleted_at.is_(None)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: WhatsAppSession) -> WhatsAppSession:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get(self, tenant_id: int, session_id: str) -> WhatsAppSession | None:
        result = await self.session.execute(
            select(S).where(S.tenant_id == tenant_id, S.id == session_id, LIVE)
        )
        return result.scalar_one_or_none()

    async def get_any_tenant(self, session_id: str) -> WhatsAppSession | None:
        result = await self.session.execute(select(S).where(S.id == session_id, LIVE))
        return result.scalar_one_or_none()

    async def id_taken(self, session_id: str) -> bool:
        """Whether any session (deleted ones too) has this id."""
        return await self.session.get(WhatsAppSession, session_id) is not None

    async def default(self, tenant_id: int) -> WhatsAppSession | None:
        result = await self.session.execute(
            select(S)
            .where(S.tenant_id == tenant_id, S.is_default.is_(True), LIVE)
            .order_by(S.created_at)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def count(self, tenant_id: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(S).where(S.tenant_id == tenant_id, LIVE)
        )
        return int(result.scalar_one())

    async def page(self, tenant_id: int, after: str | None, limit: int) -> list[WhatsAppSession]:
        query = select(S).where(S.tenant_id == tenant_id, LIVE)
        if after is not None:
            query = query.where(S.id > after)
        result = await self.session.execute(query.order_by(S.id).limit(limit))
        return list(result.scalars())

    async def of_provider(self, provider: str) -> list[WhatsAppSession]:
        result = await self.session.execute(
            select(S).where(S.provider == provider, LIVE).order_by(S.id)
        )
        return list(result.scalars())

    async def by_webhook_keys(self, provider: str, keys: Sequence[str]) -> list[WhatsAppSession]:
        if not keys:
            return []
        result = await self.session.execute(
            select(S)
            .where(S.provider == provider, S.webhook_key.in_(sorted(set(keys))), LIVE)
            .order_by(S.id)
        )
        return list(result.scalars())

    async def webhook_key_owner(self, provider: str, key: str) -> str | None:
        result = await self.session.execute(
            select(S.id).where(S.provider == provider, S.webhook_key == key)
        )
        return result.scalar_one_or_none()

    async def clear_default(self, tenant_id: int) -> None:
        await self.session.execute(
            update(S)
            .where(S.tenant_id == tenant_id, S.is_default.is_(True))
            .values(is_default=False)
            .execution_options(synchronize_session="fetch")
        )

    async def oldest(self, tenant_id: int) -> WhatsAppSession | None:
        result = await self.session.execute(
            select(S).where(S.tenant_id == tenant_id, LIVE).order_by(S.created_at, S.id).limit(1)
        )
        return result.scalar_one_or_none()

    async def active_broadcasts(self, session_id: str) -> int:
        """Broadcasts on the session that are not finished (accepted, scheduled, queued,
        running, paused)."""
        finished = sorted(status.value for status in FINAL_BROADCAST_STATUSES)
        result = await self.session.execute(
            select(func.count())
            .select_from(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.session_id == session_id)
            .where(WhatsAppBroadcast.status.not_in(finished))
        )
        return int(result.scalar_one())

    async def mark_deleted(self, row: WhatsAppSession, at: datetime) -> None:
        row.deleted_at = at
        row.webhook_key = None
        row.is_default = False
        await self.session.flush()
