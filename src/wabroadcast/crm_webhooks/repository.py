"""SQL of webhook subscriptions and their deliveries: CRUD, pages, claims under a lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, delete, exists, func, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnClause

from wabroadcast.crm_webhooks.events import DeliveryStatus
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookSubscription,
    WebhookSubscriptionEvent,
)

S = WebhookSubscription
E = WebhookSubscriptionEvent
D = WebhookDelivery
A = WebhookDeliveryAttempt
# Written as SQL constants, not parameters, so PostgreSQL matches the partial indexes.
_PENDING: ColumnClause[str] = literal_column("'pending'", String())
# What an attempt that a dead worker left behind says.
ABANDONED_ATTEMPT = "no answer recorded: the worker making this attempt stopped"


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery a worker holds under ``lease``: what to send, where, and with what."""

    id: int
    tenant_id: int
    subscription_id: int
    event_id: str
    event_type: str
    broadcast_id: int | None
    data: dict[str, Any]
    created_at: datetime
    attempt: int
    url: str
    secret: str  # the Fernet token, decrypted only to sign
    lease: str


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, subscription: WebhookSubscription) -> WebhookSubscription:
        self.session.add(subscription)
        await self.session.flush()
        await self.session.execute(
            insert(E),
            [
                {
                    "tenant_id": subscription.tenant_id,
                    "event_type": event_type,
                    "subscription_id": subscription.id,
                }
                for event_type in subscription.events
            ],
        )
        return subscription

    async def live_count(self, tenant_id: int) -> int:
        count = await self.session.scalar(
            select(func.count()).where(S.tenant_id == tenant_id, S.deleted_at.is_(None))
        )
        return int(count or 0)

    async def live(self, tenant_id: int) -> list[WebhookSubscription]:
        rows = await self.session.scalars(
            select(S).where(S.tenant_id == tenant_id, S.deleted_at.is_(None)).order_by(S.id)
        )
        return list(rows)

    async def get(self, tenant_id: int, subscription_id: int) -> WebhookSubscription | None:
        return await self.session.scalar(
            select(S).where(
                S.tenant_id == tenant_id, S.id == subscription_id, S.deleted_at.is_(None)
            )
        )

    async def remove(self, subscription: WebhookSubscription, now: datetime) -> int:
        """Delete a subscription: no new events for it, and what it is still owed is
        cancelled; its deliveries stay for their history. How many were cancelled."""
        subscription.deleted_at = now
        await self.session.execute(delete(E).where(E.subscription_id == subscription.id))
        cancelled = await self.session.execute(
            update(D)
            .where(D.subscription_id == subscription.id, D.status == _PENDING)
            .values(
                status=DeliveryStatus.CANCELLED.value,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
            .returning(D.id)
            .execution_options(synchronize_session=False)
        )
        await self.session.flush()
        return len(cancelled.all())


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        subscription_id: int,
        *,
        before_id: int | None,
        status: DeliveryStatus | None,
        limit: int,
    ) -> list[WebhookDelivery]:
        """A subscription's deliveries, newest first."""
        query = select(D).where(D.subscription_id == subscription_id)
        if before_id is not None:
            query = query.where(D.id < before_id)
        if status is not None:
            query = query.where(D.status == status.value)
        rows = await self.session.scalars(query.order_by(D.id.desc()).limit(limit))
        return list(rows)

    async def attempts_of(self, delivery_ids: Sequence[int]) -> list[WebhookDeliveryAttempt]:
        if not delivery_ids:
            return []
        rows = await self.session.scalars(
            select(A).where(one_of(self.session, A.delivery_id, delivery_ids)).order_by(A.id)
        )
        return list(rows)

    async def claim_due(
        self, lease: str, now: datetime, lease_for: timedelta, limit: int
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` deliveries that are due, each the earliest still pending
        of its broadcast for its subscription, under ``lease`` (SKIP LOCKED on
        PostgreSQL; SQLite has one writer at a time). An attempt a dead worker left
        (its lease expired) is written down as such."""
        earlier = aliased(D)
        waits_for_earlier = exists().where(
            earlier.subscription_id == D.subscription_id,
            earlier.broadcast_id == D.broadcast_id,
            earlier.status == _PENDING,
            earlier.id < D.id,
        )
        rows = (
            await self.session.execute(
                select(D, S.url, S.secret)
                .join(S, S.id == D.subscription_id)
                .where(
                    D.status == _PENDING,
                    D.next_attempt_at <= now,
                    or_(D.lease_expires_at.is_(None), D.lease_expires_at <= now),
                    ~waits_for_earlier,
                )
                .order_by(D.next_attempt_at, D.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=D)
            )
        ).all()
        if not rows:
            return []
        abandoned = [
            {
                "delivery_id": delivery.id,
                "tenant_id": delivery.tenant_id,
                "attempt": delivery.attempts,
                "attempted_at": delivery.lease_expires_at,
                "error": ABANDONED_ATTEMPT,
            }
            for delivery, _, _ in rows
            if delivery.lease_owner is not None
        ]
        if abandoned:
            await self.session.execute(insert(A), abandoned)
        ids = [delivery.id for delivery, _, _ in rows]
        await self.session.execute(
            update(D)
            .where(one_of(self.session, D.id, ids))
            .values(
                attempts=D.attempts + 1,
                lease_owner=lease,
                lease_expires_at=now + lease_for,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return [
            ClaimedDelivery(
                id=delivery.id,
                tenant_id=delivery.tenant_id,
                subscription_id=delivery.subscription_id,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                broadcast_id=delivery.broadcast_id,
                data=delivery.data,
                created_at=delivery.created_at,
                attempt=delivery.attempts + 1,
                url=str(url),
                secret=str(secret),
                lease=lease,
            )
            for delivery, url, secret in rows
        ]

    async def record(
        self,
        claimed: ClaimedDelivery,
        *,
        attempted_at: datetime,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        status: DeliveryStatus,
        retry_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Write an attempt, and the delivery's new state where its lease is still ours
        (a worker that lost its lease only adds its attempt to the history)."""
        await self.session.execute(
            insert(A).values(
                delivery_id=claimed.id,
                tenant_id=claimed.tenant_id,
                attempt=claimed.attempt,
                attempted_at=attempted_at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
            )
        )
        finished = status is not DeliveryStatus.PENDING
        result = await self.session.execute(
            update(D)
            .where(D.id == claimed.id, D.lease_owner == claimed.lease, D.status == _PENDING)
            .values(
                status=status.value,
                next_attempt_at=retry_at,
                lease_owner=None,
                lease_expires_at=None,
                last_status_code=status_code,
                last_error=error,
                finished_at=now if finished else None,
                updated_at=now,
            )
            .returning(D.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None
