"""Webhook subscription use cases: subscribe, list, unsubscribe, and what was delivered."""

from __future__ import annotations

from collections import defaultdict

from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.events import DeliveryStatus, EventType, new_secret
from wabroadcast.crm_webhooks.repository import DeliveryRepository, SubscriptionRepository
from wabroadcast.crm_webhooks.schemas import (
    AttemptOut,
    DeliveriesPage,
    DeliveryOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionsList,
)
from wabroadcast.db.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookSubscription
from wabroadcast.domain.errors import TooManyWebhookSubscriptions, WebhookSubscriptionNotFound
from wabroadcast.observability.logging import get_logger
from wabroadcast.pagination import decode_cursor, page_cursor
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.crm_webhooks")

# Live subscriptions one tenant may have: each is one more POST per event.
MAX_SUBSCRIPTIONS = 20
# The key of the signing secret in its encrypted token.
SECRET_FIELD = "secret"  # noqa: S105 (a field name, not a password)


def _out(row: WebhookSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        url=row.url,
        events=[EventType(e) for e in row.events],
        created_at=row.created_at,
    )


def _not_found(subscription_id: int) -> WebhookSubscriptionNotFound:
    return WebhookSubscriptionNotFound(
        "Webhook subscription not found", details={"subscription_id": subscription_id}
    )


async def create_subscription(
    ctx: AppContext, tenant: TenantContext, body: SubscriptionCreate
) -> SubscriptionCreated:
    """Subscribe a URL to events; the signing secret (given or generated) is stored
    encrypted and returned this once."""
    secret = body.secret or new_secret()
    now = ctx.clock.now()
    async with ctx.database.transaction() as db:
        repo = SubscriptionRepository(db)
        if await repo.live_count(tenant.tenant_id) >= MAX_SUBSCRIPTIONS:
            raise TooManyWebhookSubscriptions(
                f"A tenant has at most {MAX_SUBSCRIPTIONS} webhook subscriptions",
                details={"max": MAX_SUBSCRIPTIONS},
            )
        row = await repo.add(
            WebhookSubscription(
                tenant_id=tenant.tenant_id,
                url=body.url,
                events=[event.value for event in body.events],
                secret=ctx.secrets.encrypt({SECRET_FIELD: secret}),
                created_at=now,
            )
        )
        out = _out(row)
    log.info(
        "webhook subscription created",
        broadcast_id=None,
        tenant_id=tenant.tenant_id,
        subscription_id=out.id,
        events=[e.value for e in out.events],
    )
    return SubscriptionCreated(**out.model_dump(), secret=secret)


async def list_subscriptions(ctx: AppContext, tenant: TenantContext) -> SubscriptionsList:
    async with ctx.database.transaction() as db:
        rows = await SubscriptionRepository(db).live(tenant.tenant_id)
        return SubscriptionsList(items=[_out(row) for row in rows])


async def get_subscription(
    ctx: AppContext, tenant: TenantContext, subscription_id: int
) -> SubscriptionOut:
    async with ctx.database.transaction() as db:
        row = await SubscriptionRepository(db).get(tenant.tenant_id, subscription_id)
        if row is None:
            raise _not_found(subscription_id)
        return _out(row)


async def delete_subscription(ctx: AppContext, tenant: TenantContext, subscription_id: int) -> None:
    """Stop sending to a subscription; what it was still owed is cancelled."""
    async with ctx.database.transaction() as db:
        repo = SubscriptionRepository(db)
        row = await repo.get(tenant.tenant_id, subscription_id)
        if row is None:
            raise _not_found(subscription_id)
        cancelled = await repo.remove(row, ctx.clock.now())
    log.info(
        "webhook subscription deleted",
        broadcast_id=None,
        tenant_id=tenant.tenant_id,
        subscription_id=subscription_id,
        cancelled_deliveries=cancelled,
    )


def _delivery_out(row: WebhookDelivery, attempts: list[WebhookDeliveryAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_id=row.event_id,
        event_type=EventType(row.event_type),
        broadcast_id=row.broadcast_id,
        data=row.data,
        status=DeliveryStatus(row.status),
        attempts_count=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        attempts=[
            AttemptOut(
                attempt=a.attempt,
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in attempts
        ],
    )


async def list_deliveries(
    ctx: AppContext,
    tenant: TenantContext,
    subscription_id: int,
    *,
    cursor: str | None,
    status: DeliveryStatus | None,
    limit: int,
) -> DeliveriesPage:
    """A subscription's deliveries, newest first, each with its attempts."""
    before = decode_cursor(cursor)
    async with ctx.database.transaction() as db:
        if await SubscriptionRepository(db).get(tenant.tenant_id, subscription_id) is None:
            raise _not_found(subscription_id)
        repo = DeliveryRepository(db)
        rows = await repo.page(subscription_id, before_id=before, status=status, limit=limit)
        attempts: dict[int, list[WebhookDeliveryAttempt]] = defaultdict(list)
        for attempt in await repo.attempts_of([row.id for row in rows]):
            attempts[attempt.delivery_id].append(attempt)
    return DeliveriesPage(
        items=[_delivery_out(row, attempts[row.id]) for row in rows],
        next_cursor=page_cursor([row.id for row in rows], limit),
    )
