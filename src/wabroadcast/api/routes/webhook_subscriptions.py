"""Webhook subscription routes: where the CRM hears about broadcasts, and what it was sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.api.routes import tenant_errors
from wabroadcast.crm_webhooks import service
from wabroadcast.crm_webhooks.events import DeliveryStatus
from wabroadcast.crm_webhooks.schemas import (
    DeliveriesPage,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionsList,
)
from wabroadcast.domain.errors import TooManyWebhookSubscriptions, WebhookSubscriptionNotFound

router = APIRouter(prefix="/api/whatsapp/webhook-subscriptions", tags=["webhook subscriptions"])

SubscriptionId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    responses=tenant_errors(TooManyWebhookSubscriptions),
    summary="Send events to a URL of the CRM, signed with a secret shown only now",
    description=(
        "Each event is POSTed as `{id, type, created_at, data}` with "
        "`X-Wabroadcast-Signature: sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>` and "
        "`X-Wabroadcast-Timestamp`; retried on a non-2xx answer or a timeout for 24 h with "
        "the same `X-Wabroadcast-Event-Id`, a broadcast's events in order."
    ),
)
async def create_subscription(
    body: SubscriptionCreate, ctx: Ctx, tenant: CurrentTenant
) -> SubscriptionCreated:
    return await service.create_subscription(ctx, tenant, body)


@router.get(
    "",
    response_model=SubscriptionsList,
    responses=tenant_errors(),
    summary="The tenant's webhook subscriptions (secrets are never shown again)",
)
async def list_subscriptions(ctx: Ctx, tenant: CurrentTenant) -> SubscriptionsList:
    return await service.list_subscriptions(ctx, tenant)


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    responses=tenant_errors(WebhookSubscriptionNotFound),
    summary="One webhook subscription",
)
async def get_subscription(
    subscription_id: SubscriptionId, ctx: Ctx, tenant: CurrentTenant
) -> SubscriptionOut:
    return await service.get_subscription(ctx, tenant, subscription_id)


@router.delete(
    "/{subscription_id}",
    status_code=204,
    responses=tenant_errors(WebhookSubscriptionNotFound),
    summary="Stop sending to a subscription; deliveries it is still owed are cancelled",
)
async def delete_subscription(
    subscription_id: SubscriptionId, ctx: Ctx, tenant: CurrentTenant
) -> Response:
    await service.delete_subscription(ctx, tenant, subscription_id)
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveriesPage,
    responses=tenant_errors(WebhookSubscriptionNotFound),
    summary="What was sent to a subscription, newest first, each attempt with its answer",
)
async def list_deliveries(
    subscription_id: SubscriptionId,
    ctx: Ctx,
    tenant: CurrentTenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: DeliveryStatus | None = None,
) -> DeliveriesPage:
    return await service.list_deliveries(
        ctx, tenant, subscription_id, cursor=cursor, status=status, limit=limit
    )
