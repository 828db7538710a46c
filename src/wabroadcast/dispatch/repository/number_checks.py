"""SQL of the number-check cache: what a provider answered about a number being on
WhatsApp, per tenant, trusted until it is older than ``FRESH_FOR``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import NumberCheck

# How long an answer is trusted: numbers join and leave WhatsApp, but rarely.
FRESH_FOR = timedelta(days=30)


class NumberCheckRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def fresh(self, tenant_id: int, phones: Sequence[str], now: datetime) -> dict[str, bool]:
        """The answers about ``phones`` checked less than ``FRESH_FOR`` before ``now``."""
        if not phones:
            return {}
        result = await self.session.execute(
            select(NumberCheck.phone, NumberCheck.on_whatsapp).where(
                NumberCheck.tenant_id == tenant_id,
                one_of(self.session, NumberCheck.phone, sorted(set(phones))),
                NumberCheck.checked_at > now - FRESH_FOR,
            )
        )
        return {str(phone): bool(on) for phone, on in result.all()}

    async def remember(self, tenant_id: int, answers: Mapping[str, bool], now: datetime) -> None:
        """Store the provider's answers, checked at ``now``, over any older ones."""
        if not answers:
            return
        rows = [
            {"tenant_id": tenant_id, "phone": phone, "on_whatsapp": on, "checked_at": now}
            for phone, on in sorted(answers.items())
        ]
        statement = (pg_insert if is_postgres(self.session) else sqlite_insert)(NumberCheck)
        await self.session.execute(
            statement.values(rows).on_conflict_do_update(
                index_elements=["tenant_id", "phone"],
                set_={
                    "on_whatsapp": statement.excluded.on_whatsapp,
                    "checked_at": statement.excluded.checked_at,
                },
            )
        )
