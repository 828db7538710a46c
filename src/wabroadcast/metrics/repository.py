"""All SQL of the metrics: counters of active broadcasts and recent recipient events.

Every query is bounded by an index, whatever the number of recipient rows:
pending and active counts read the counters of the tenant's active broadcasts
(index ``(tenant_id, status, id)``), never the recipients; the recent counts
are range scans of the partial ``(tenant_id, <event>_at)`` indexes, so they
read only the rows of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from wabroadcast.db.engine import is_postgres
from wabroadcast.db.models import Tenant, WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.status import ACTIVE_BROADCAST_STATUSES

B = WhatsAppBroadcast
R = WhatsAppBroadcastRecipient

Event = Literal["sent", "delivered", "failed"]

_EVENT_COLUMNS: dict[Event, InstrumentedAttribute[datetime | None]] = {
    "sent": R.sent_at,
    "delivered": R.delivered_at,
    "failed": R.failed_at,
}
_ACTIVE = sorted(status.value for status in ACTIVE_BROADCAST_STATUSES)


@dataclass(frozen=True, slots=True)
class TenantCounts:
    pending: int
    active_broadcasts: int
    sent: int
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class TenantBacklog:
    """One tenant's active broadcasts and the recipients they still have to send."""

    tenant_id: int
    active_broadcasts: int
    pending: int


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _is_postgres(self) -> bool:
        return is_postgres(self.session)

    async def tenant_counts(
        self, tenant_id: int, *, since: datetime, until: datetime
    ) -> TenantCounts:
        """Pending and active counts now, and events with a time in ``(since, until]``.

        One round trip: every number is a scalar subquery of one SELECT.
        """
        active = (B.tenant_id == tenant_id, B.status.in_(_ACTIVE))
        row = (
            await self.session.execute(
                select(
                    select(func.coalesce(func.sum(B.queued_count + B.sending_count), 0))
                    .where(*active)
                    .scalar_subquery(),
                    select(func.count()).select_from(B).where(*active).scalar_subquery(),
                    *(
                        self._events_between(tenant_id, event, since, until).scalar_subquery()
                        for event in ("sent", "delivered", "failed")
                    ),
                )
            )
        ).one()
        pending, active_broadcasts, sent, delivered, failed = (int(value) for value in row)
        return TenantCounts(pending, active_broadcasts, sent, delivered, failed)

    def _events_between(
        self, tenant_id: int, event: Event, since: datetime, until: datetime
    ) -> Select[int]:
        column = _EVENT_COLUMNS[event]
        return (
            select(func.count())
            .select_from(R)
            .where(R.tenant_id == tenant_id, column > since, column <= until)
        )

    async def events_per_minute(
        self, tenant_id: int, event: Event, *, since: datetime, until: datetime
    ) -> dict[datetime, int]:
        """Events with a time in ``[since, until]``, counted per UTC minute (its start)."""
        column = _EVENT_COLUMNS[event]
        minute = self._minute_of(column)
        rows = await self.session.execute(
            select(minute, func.count())
            .where(R.tenant_id == tenant_id, column >= since, column <= until)
            .group_by(minute)
        )
        return {_as_utc_minute(value): int(count) for value, count in rows}

    def _minute_of(self, column: InstrumentedAttribute[datetime | None]) -> ColumnElement[object]:
        """The start of the UTC minute of a timestamp, grouped on by the database.

        SQLite stores UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, so the minute is
        its first 16 characters; PostgreSQL truncates the UTC wall time.
        """
        if self._is_postgres:
            return func.date_trunc("minute", func.timezone("UTC", column))
        return func.substr(column, 1, 16)

    async def backlog_by_tenant(self) -> list[TenantBacklog]:
        """Every tenant, with zeros for those without active broadcasts (for a gauge per tenant).

        Reads tenants and their active broadcasts only (index ``(status, session_id)``
        or ``(tenant_id, status, id)``), never recipient rows.
        """
        rows = await self.session.execute(
            select(
                Tenant.id,
                func.count(B.id),
                func.coalesce(func.sum(B.queued_count + B.sending_count), 0),
            )
            .select_from(Tenant)
            .outerjoin(B, (B.tenant_id == Tenant.id) & B.status.in_(_ACTIVE))
            .group_by(Tenant.id)
            .order_by(Tenant.id)
        )
        return [TenantBacklog(int(tid), int(active), int(pending)) for tid, active, pending in rows]


def _as_utc_minute(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise TypeError(f"unexpected minute value {value!r}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
