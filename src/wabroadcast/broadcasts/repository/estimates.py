"""SQL of estimates: the sessions of the broadcasts shown, and each session's line of
sendable broadcasts in serving order, in one statement each whatever the page size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.estimates import InLine
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import Tenant, WhatsAppBroadcast, WhatsAppSession
from wabroadcast.dispatch.repository.daily_sends import CappedToday, DailySendsRepository
from wabroadcast.domain.status import BroadcastStatus

B = WhatsAppBroadcast
# The broadcasts whose recipients the dispatcher claims (``dispatch.repository.lifecycle``).
_SENDABLE = (BroadcastStatus.QUEUED.value, BroadcastStatus.RUNNING.value)


class EstimateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sessions(self, tenant_id: int, session_ids: Collection[str]) -> list[WhatsAppSession]:
        """The tenant's sessions among ``session_ids`` (deleted ones too: their broadcasts
        are still shown), with their pace settings and GCRA turn."""
        if not session_ids:
            return []
        result = await self.session.execute(
            select(WhatsAppSession).where(
                WhatsAppSession.tenant_id == tenant_id,
                one_of(self.session, WhatsAppSession.id, sorted(session_ids)),
            )
        )
        return list(result.scalars())

    async def capped_today(
        self, session_ids: Collection[str], now: datetime
    ) -> dict[str, CappedToday]:
        """Today's cap and sends of each capped session (read after ``sessions``, whose
        rows it reuses); uncapped sessions are left out."""
        return await DailySendsRepository(self.session).capped_today(session_ids, now, lock=False)

    async def lines(
        self, tenant_id: int, session_ids: Collection[str], up_to_id: int
    ) -> dict[str, list[InLine]]:
        """Each session's queued and running broadcasts with recipients queued or sending,
        oldest first (the order the dispatcher serves them), up to broadcast ``up_to_id``
        (none younger is ahead of a broadcast shown)."""
        if not session_ids:
            return {}
        pending = B.queued_count + B.sending_count
        result = await self.session.execute(
            select(B.session_id, B.id, pending)
            .where(
                B.tenant_id == tenant_id,
                B.status.in_(_SENDABLE),
                one_of(self.session, B.session_id, sorted(session_ids)),
                B.id <= up_to_id,
                pending > 0,
            )
            .order_by(B.session_id, B.id)
        )
        lines: dict[str, list[InLine]] = defaultdict(list)
        for session_id, broadcast_id, count in result.all():
            lines[str(session_id)].append(InLine(int(broadcast_id), int(count)))
        return dict(lines)

    async def quiet_hours(
        self, tenant_id: int, broadcast_ids: Collection[int]
    ) -> tuple[str | None, str | None, dict[int, tuple[str | None, str | None]]]:
        """The tenant's time zone and quiet hours, and each broadcast's own quiet hours
        and zone mode (``quiet_hours``, ``quiet_hours_zone``) by id."""
        tenant = (
            await self.session.execute(
                select(Tenant.time_zone, Tenant.quiet_hours).where(Tenant.id == tenant_id)
            )
        ).first()
        own: dict[int, tuple[str | None, str | None]] = {}
        if broadcast_ids:
            result = await self.session.execute(
                select(B.id, B.quiet_hours, B.quiet_hours_zone).where(
                    B.tenant_id == tenant_id, one_of(self.session, B.id, sorted(broadcast_ids))
                )
            )
            own = {int(b): (quiet, zone) for b, quiet, zone in result.all()}
        if tenant is None:
            return None, None, own
        return tenant[0], tenant[1], own
