"""Where the dashboard gets its numbers: the four spec metrics and sends per minute.

The metrics service (``wabroadcast.metrics.service``: cached, index-backed,
shared with ``GET /api/whatsapp/metrics``) is built on another branch. Until the
two meet, this module computes the same numbers with plain queries of its own;
at the merge each function's body becomes one call to that service, and the
queries below go away. The pages only rely on the attribute names of
``TileMetrics`` and ``MinuteCounts``, which the service's models also have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.status import ACTIVE_BROADCAST_STATUSES, RecipientStatus
from wabroadcast.tenants.service import TenantContext

RECENT = timedelta(minutes=5)
R = WhatsAppBroadcastRecipient
B = WhatsAppBroadcast
Timestamp = InstrumentedAttribute[datetime | None]


class TileMetrics(Protocol):
    @property
    def pending_count(self) -> int: ...
    @property
    def sent_last_5m(self) -> int: ...
    @property
    def failed_last_5m(self) -> int: ...
    @property
    def delivered_last_5m(self) -> int: ...
    @property
    def active_broadcasts(self) -> int: ...
    @property
    def generated_at(self) -> datetime: ...


class MinuteCounts(Protocol):
    @property
    def minute(self) -> datetime: ...
    @property
    def sent(self) -> int: ...
    @property
    def failed(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Metrics:
    pending_count: int
    sent_last_5m: int
    failed_last_5m: int
    delivered_last_5m: int
    active_broadcasts: int
    generated_at: datetime


@dataclass(frozen=True, slots=True)
class _Minute:
    minute: datetime
    sent: int
    failed: int


async def tenant_metrics(ctx: AppContext, tenant: TenantContext) -> TileMetrics:
    """Recipients pending, sent/failed/delivered in the last 5 minutes, active broadcasts."""
    now = ctx.clock.now()
    async with ctx.database.transaction() as db:
        queries = _MetricQueries(db, tenant.tenant_id)
        pending, active = await queries.pending_and_active()
        since = now - RECENT
        return _Metrics(
            pending_count=pending,
            sent_last_5m=await queries.count_since(R.sent_at, since),
            failed_last_5m=await queries.count_since(
                R.failed_at, since, R.status == RecipientStatus.FAILED.value
            ),
            delivered_last_5m=await queries.count_since(R.delivered_at, since),
            active_broadcasts=active,
            generated_at=now,
        )


async def sends_per_minute(
    ctx: AppContext, tenant: TenantContext, minutes: int = 60
) -> list[MinuteCounts]:
    """Sent and failed per minute, oldest first, every minute present (the last one running)."""
    now = ctx.clock.now()
    last = now.replace(second=0, microsecond=0)
    first = last - timedelta(minutes=minutes - 1)
    async with ctx.database.transaction() as db:
        queries = _MetricQueries(db, tenant.tenant_id)
        sent = await queries.per_minute(R.sent_at, first)
        failed = await queries.per_minute(
            R.failed_at, first, R.status == RecipientStatus.FAILED.value
        )
    series: list[MinuteCounts] = []
    for index in range(minutes):
        minute = first + timedelta(minutes=index)
        series.append(_Minute(minute, sent.get(minute, 0), failed.get(minute, 0)))
    return series


class _MetricQueries:
    """The interim queries; they scan one tenant's recipients, without special indexes."""

    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def pending_and_active(self) -> tuple[int, int]:
        """Broadcast counters mirror their recipients' statuses, so pending is their sum."""
        active = [s.value for s in ACTIVE_BROADCAST_STATUSES]
        row = (
            await self.session.execute(
                select(
                    func.coalesce(func.sum(B.queued_count + B.sending_count), 0),
                    func.coalesce(func.sum(case((B.status.in_(active), 1), else_=0)), 0),
                ).where(B.tenant_id == self.tenant_id)
            )
        ).one()
        return int(row[0]), int(row[1])

    async def count_since(
        self, column: Timestamp, since: datetime, *extra: ColumnElement[bool]
    ) -> int:
        query = select(func.count()).where(R.tenant_id == self.tenant_id, column >= since, *extra)
        return int((await self.session.execute(query)).scalar_one())

    async def per_minute(
        self, column: Timestamp, since: datetime, *extra: ColumnElement[bool]
    ) -> dict[datetime, int]:
        minute = self._minute_of(column)
        query = (
            select(minute, func.count())
            .where(R.tenant_id == self.tenant_id, column >= since, *extra)
            .group_by(minute)
        )
        counts: dict[datetime, int] = {}
        for value, count in (await self.session.execute(query)).all():
            counts[_as_minute(value)] = int(count)
        return counts

    def _minute_of(self, column: Timestamp) -> ColumnElement[object]:
        if self.session.get_bind().dialect.name == "postgresql":
            return func.date_trunc("minute", column)
        # SQLite stores UTC as "YYYY-MM-DD HH:MM:SS.ffffff" text.
        return func.strftime("%Y-%m-%d %H:%M:00", column)


def _as_minute(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)
