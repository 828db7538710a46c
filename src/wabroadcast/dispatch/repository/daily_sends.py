"""SQL of daily caps: each capped session's sends of the day (``session_daily_sends``),
reserved under the row's lock by the claim that uses them, so every worker agrees.

Sessions without a cap never touch the table: their settings are read from the
session rows the caller's transaction loaded already (the dispatcher reads them
before it claims), and only capped sessions cost a look at their tenant's zone
and their counter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import case, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import SessionDailySends, Tenant, WhatsAppBroadcast, WhatsAppSession
from wabroadcast.domain import daily_caps
from wabroadcast.domain.daily_caps import CapSettings
from wabroadcast.providers.registry import daily_cap_preset

B = WhatsAppBroadcast
D = SessionDailySends
S = WhatsAppSession


def cap_settings(row: WhatsAppSession) -> CapSettings:
    """The cap settings of a session row."""
    return CapSettings(
        created_at=row.created_at,
        preset=daily_cap_preset(row.provider, row.config or {}),
        daily_cap=row.daily_cap,
        warmup_days=row.warmup_days,
        warmup_start_cap=row.warmup_start_cap,
        warmup_growth=row.warmup_growth,
        warmup_started_at=row.warmup_started_at,
    )


@dataclass(frozen=True, slots=True)
class CappedToday:
    """A capped session's day: which day (in its tenant's zone), its cap and sends so far."""

    session_id: str
    tenant_id: int
    zone: str
    day: date
    cap: int | None
    sends: int
    settings: CapSettings

    @property
    def left(self) -> int | None:
        """Sends still allowed today; None: no cap today (a warm-up that ended, say)."""
        return None if self.cap is None else max(0, self.cap - self.sends)


class DailySendsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _session_rows(self, session_ids: Collection[str]) -> list[WhatsAppSession]:
        """The sessions, from the transaction's identity map where loaded already."""
        found: list[WhatsAppSession] = []
        missing: list[str] = []
        identity_map = self.session.sync_session.identity_map
        for session_id in sorted(session_ids):
            row = identity_map.get(identity_key(S, session_id))
            if isinstance(row, WhatsAppSession):
                found.append(row)
            else:
                missing.append(session_id)
        if missing:
            result = await self.session.execute(
                select(S).where(one_of(self.session, S.id, missing))
            )
            found += result.scalars()
        return found

    async def _zones(self, tenant_ids: Collection[int]) -> dict[int, str]:
        result = await self.session.execute(
            select(Tenant.id, Tenant.time_zone).where(Tenant.id.in_(sorted(set(tenant_ids))))
        )
        return {int(tenant_id): str(zone) for tenant_id, zone in result.all()}

    async def capped_today(
        self, session_ids: Collection[str], now: datetime, *, lock: bool
    ) -> dict[str, CappedToday]:
        """Each capped session among ``session_ids`` with today's cap and sends; sessions
        never capped are left out (with no statement at all when the transaction loaded
        their rows already). With ``lock`` the day's counter rows are created and locked,
        so one claim at a time reserves from each."""
        rows = [
            row
            for row in await self._session_rows(session_ids)
            if daily_caps.ever_capped(cap_settings(row))
        ]
        if not rows:
            return {}
        zones = await self._zones({row.tenant_id for row in rows})
        today: dict[str, CappedToday] = {}
        for row in rows:
            settings = cap_settings(row)
            zone = zones.get(row.tenant_id, "UTC")
            day = daily_caps.local_day(now, zone)
            cap = daily_caps.cap_on(settings, day, zone)
            today[row.id] = CappedToday(row.id, row.tenant_id, zone, day, cap, 0, settings)
        sends = await (self._lock_counters(today.values()) if lock else self._read(today.values()))
        return {s: replace(c, sends=sends.get(s, 0)) for s, c in today.items()}

    async def _lock_counters(self, days: Collection[CappedToday]) -> dict[str, int]:
        """Create the day's counter rows that are missing and lock them, in session order."""
        if not days:
            return {}
        values = [
            {"session_id": c.session_id, "day": c.day, "tenant_id": c.tenant_id, "sends": 0}
            for c in sorted(days, key=lambda c: c.session_id)
        ]
        statement = (pg_insert if is_postgres(self.session) else sqlite_insert)(D)
        await self.session.execute(
            statement.values(values).on_conflict_do_nothing(index_elements=["session_id", "day"])
        )
        query = (
            select(D.session_id, D.sends)
            .where(tuple_(D.session_id, D.day).in_([(c.session_id, c.day) for c in days]))
            .order_by(D.session_id)
        )
        if is_postgres(self.session):
            query = query.with_for_update()
        result = await self.session.execute(query)
        return {str(session_id): int(sends) for session_id, sends in result.all()}

    async def _read(self, days: Collection[CappedToday]) -> dict[str, int]:
        if not days:
            return {}
        result = await self.session.execute(
            select(D.session_id, D.sends).where(
                tuple_(D.session_id, D.day).in_([(c.session_id, c.day) for c in days])
            )
        )
        return {str(session_id): int(sends) for session_id, sends in result.all()}

    async def add(self, added: Mapping[tuple[str, date], int]) -> None:
        """Add to (or, negative, take back from) sessions' counters of a day; a counter
        never goes below 0 (what is given back after midnight was counted the day before)."""
        for (session_id, day), count in sorted(added.items()):
            if count == 0:
                continue
            await self.session.execute(
                update(D)
                .where(D.session_id == session_id, D.day == day)
                .values(sends=case((D.sends + count > 0, D.sends + count), else_=0))
                .execution_options(synchronize_session=False)
            )

    async def give_back(self, session_id: str, count: int, now: datetime) -> None:
        """``count`` claims of the session that will not be sent no longer count against
        its cap of today (nothing for a session without one)."""
        if count <= 0:
            return
        today = (await self.capped_today([session_id], now, lock=False)).get(session_id)
        if today is not None:
            await self.add({(session_id, today.day): -count})

    async def sessions_of_broadcasts(self, broadcast_ids: Sequence[int]) -> dict[int, str]:
        """The session of each broadcast."""
        if not broadcast_ids:
            return {}
        result = await self.session.execute(
            select(B.id, B.session_id).where(B.id.in_(sorted(set(broadcast_ids))))
        )
        return {int(broadcast_id): str(session_id) for broadcast_id, session_id in result.all()}
