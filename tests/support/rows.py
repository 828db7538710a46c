"""Small helpers for tests that look at the database directly."""

from __future__ import annotations

from sqlalchemy import func, select

from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient


async def row_counts(ctx: AppContext) -> tuple[int, int]:
    """How many broadcast rows and recipient rows exist, across all tenants."""
    async with ctx.database.transaction() as session:
        broadcasts = (
            await session.execute(select(func.count()).select_from(WhatsAppBroadcast))
        ).scalar_one()
        recipients = (
            await session.execute(select(func.count()).select_from(WhatsAppBroadcastRecipient))
        ).scalar_one()
    return int(broadcasts), int(recipients)


def il_numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Israeli mobile numbers in E.164."""
    return [f"+97250{start + i:07d}" for i in range(count)]
