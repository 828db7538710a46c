"""The outbox: events written in the transaction of the change they report.

A status change and the event that tells the CRM about it commit together or not
at all, so a process that dies between them loses nothing and invents nothing.
Each call first asks, in one indexed query, which of the tenant's subscriptions
want the event; with none, nothing more is done, so tenants without webhooks pay
one lookup per change (and the send path one per written batch with failures).

Call after the change is written and its broadcast row locked (every writer
locks broadcasts before updating them), so the order of a broadcast's events by
id is the order in which their transactions commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.crm_webhooks.events import (
    BROADCAST_STATUS_EVENTS,
    DeliveryStatus,
    EventType,
    new_event_id,
)
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    WebhookDelivery,
    WebhookSubscriptionEvent,
    WhatsAppBroadcast,
    table_of,
)

B = WhatsAppBroadcast
E = WebhookSubscriptionEvent
_EVENTFUL_STATUSES = sorted(status.value for status in BROADCAST_STATUS_EVENTS)


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    """A recipient that just failed, as ``recipient.failed`` reports it."""

    tenant_id: int
    broadcast_id: int
    recipient_id: int
    phone: str
    lead_id: int | None
    error_code: str | None
    error_message: str | None


class RepliedRecipient(Protocol):
    """A recipient just marked as having replied, as ``recipient.replied`` reports it."""

    @property
    def tenant_id(self) -> int: ...
    @property
    def broadcast_id(self) -> int: ...
    @property
    def recipient_id(self) -> int: ...
    @property
    def phone(self) -> str: ...
    @property
    def lead_id(self) -> int | None: ...
    @property
    def text(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Event:
    tenant_id: int
    event_type: str
    broadcast_id: int | None
    data: dict[str, Any]


class Outbox:
    """Writes the events a change owes to its tenant's subscriptions, in its transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        tenant_id: int,
        event_type: EventType,
        data: dict[str, Any],
        now: datetime,
        *,
        broadcast_id: int | None = None,
    ) -> None:
        """One event of the tenant; with a ``broadcast_id`` it keeps its place among
        that broadcast's events."""
        subscribers = await self._subscribers([tenant_id], event_type)
        await self._write([_Event(tenant_id, event_type, broadcast_id, data)], subscribers, now)

    async def broadcasts_changed(self, broadcast_ids: Iterable[int], now: datetime) -> None:
        """Each broadcast's event for the status it has now (queued, paused or a final
        one; none for the others), with its counts, to the subscriptions that want it."""
        ids = sorted(set(broadcast_ids))
        if not ids:
            return
        rows = (
            await self.session.execute(
                select(
                    B.id,
                    B.tenant_id,
                    B.session_id,
                    B.status,
                    B.status_reason,
                    B.total_recipients,
                    B.queued_count + B.sending_count,
                    B.sent_count + B.delivered_count + B.read_count,
                    B.delivered_count + B.read_count,
                    B.read_count,
                    B.failed_count,
                    B.cancelled_count,
                    B.skipped_count,
                    E.subscription_id,
                )
                .join(
                    E,
                    and_(
                        E.tenant_id == B.tenant_id,
                        E.event_type == literal("broadcast.") + B.status,
                    ),
                )
                .where(one_of(self.session, B.id, ids), B.status.in_(_EVENTFUL_STATUSES))
                .order_by(B.id, E.subscription_id)
            )
        ).all()
        events: dict[int, _Event] = {}
        subscribers: dict[tuple[int, str], list[int]] = defaultdict(list)
        for row in rows:
            broadcast_id, tenant_id, status = int(row[0]), int(row[1]), str(row[3])
            event_type = f"broadcast.{status}"
            if broadcast_id not in events:
                events[broadcast_id] = _Event(
                    tenant_id,
                    event_type,
                    broadcast_id,
                    {
                        "broadcast_id": broadcast_id,
                        "session_id": row[2],
                        "status": status,
                        "status_reason": row[4],
                        "total_recipients": int(row[5]),
                        "queued_count": int(row[6]),
                        "sent_count": int(row[7]),
                        "delivered_count": int(row[8]),
                        "read_count": int(row[9]),
                        "failed_count": int(row[10]),
                        "cancelled_count": int(row[11]),
                        "skipped_count": int(row[12]),
                    },
                )
            subscribers[(tenant_id, event_type)].append(int(row[13]))
        await self._write(list(events.values()), subscribers, now)

    async def recipients_failed(self, failed: Sequence[FailedRecipient], now: datetime) -> None:
        """``recipient.failed`` for each of a written batch's failures: one lookup, and
        one insert if any tenant of theirs subscribed."""
        if not failed:
            return
        event_type = EventType.RECIPIENT_FAILED
        subscribers = await self._subscribers(sorted({f.tenant_id for f in failed}), event_type)
        if not subscribers:
            return
        events = [
            _Event(
                f.tenant_id,
                event_type,
                f.broadcast_id,
                {
                    "broadcast_id": f.broadcast_id,
                    "recipient_id": f.recipient_id,
                    "phone": f.phone,
                    "lead_id": f.lead_id,
                    "error_code": f.error_code,
                    "error_message": f.error_message,
                },
            )
            for f in sorted(failed, key=lambda f: (f.broadcast_id, f.recipient_id))
        ]
        await self._write(events, subscribers, now)

    async def recipients_replied(self, replied: Sequence[RepliedRecipient], now: datetime) -> None:
        """``recipient.replied`` for each recipient just marked: one lookup, and one
        insert if any tenant of theirs subscribed."""
        if not replied:
            return
        event_type = EventType.RECIPIENT_REPLIED
        subscribers = await self._subscribers(sorted({r.tenant_id for r in replied}), event_type)
        if not subscribers:
            return
        replied_at = now.isoformat().replace("+00:00", "Z")
        events = [
            _Event(
                r.tenant_id,
                event_type,
                r.broadcast_id,
                {
                    "broadcast_id": r.broadcast_id,
                    "recipient_id": r.recipient_id,
                    "phone": r.phone,
                    "lead_id": r.lead_id,
                    "text": r.text,
                    "replied_at": replied_at,
                },
            )
            for r in sorted(replied, key=lambda r: (r.broadcast_id, r.recipient_id))
        ]
        await self._write(events, subscribers, now)

    async def numbers_opted_out(
        self, tenant_id: int, phones: Sequence[str], source: str, reason: str | None, now: datetime
    ) -> None:
        """``recipient.opted_out`` for each number a tenant just added to its opt-outs:
        one lookup, and one insert if the tenant subscribed."""
        if not phones:
            return
        event_type = EventType.RECIPIENT_OPTED_OUT
        subscribers = await self._subscribers([tenant_id], event_type)
        if not subscribers:
            return
        events = [
            _Event(
                tenant_id,
                event_type,
                None,
                {"phone": phone, "source": source, "reason": reason},
            )
            for phone in phones
        ]
        await self._write(events, subscribers, now)

    async def _subscribers(
        self, tenant_ids: Sequence[int], event_type: str
    ) -> dict[tuple[int, str], list[int]]:
        """(tenant, event) -> the subscriptions that want it."""
        rows = await self.session.execute(
            select(E.tenant_id, E.subscription_id)
            .where(E.event_type == event_type, one_of(self.session, E.tenant_id, tenant_ids))
            .order_by(E.tenant_id, E.subscription_id)
        )
        found: dict[tuple[int, str], list[int]] = defaultdict(list)
        for tenant_id, subscription_id in rows.all():
            found[(int(tenant_id), event_type)].append(int(subscription_id))
        return found

    async def _write(
        self,
        events: Sequence[_Event],
        subscribers: dict[tuple[int, str], list[int]],
        now: datetime,
    ) -> None:
        rows = []
        for event in events:
            event_id = new_event_id()
            for subscription_id in subscribers.get((event.tenant_id, event.event_type), []):
                rows.append(
                    {
                        "tenant_id": event.tenant_id,
                        "subscription_id": subscription_id,
                        "event_id": event_id,
                        "event_type": event.event_type,
                        "broadcast_id": event.broadcast_id,
                        "data": event.data,
                        "created_at": now,
                        "status": DeliveryStatus.PENDING.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "updated_at": now,
                    }
                )
        if rows:
            await self.session.execute(insert(table_of(WebhookDelivery)), rows)
