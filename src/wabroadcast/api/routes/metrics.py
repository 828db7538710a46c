"""Metrics routes: a tenant's numbers as JSON."""

from __future__ import annotations

from fastapi import APIRouter

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.api.routes import error_responses
from wabroadcast.metrics import service
from wabroadcast.metrics.schemas import TenantMetricsOut

router = APIRouter(tags=["metrics"])


@router.get(
    "/api/whatsapp/metrics",
    response_model=TenantMetricsOut,
    responses=error_responses(401),
    summary="Pending, active, and sent / delivered / failed in the last 5 minutes",
    description=(
        "Computed from the database and cached per tenant for `WABROADCAST_METRICS_CACHE_S` "
        "seconds (10 by default); `cached` says whether this answer came from the cache."
    ),
)
async def tenant_metrics(ctx: Ctx, tenant: CurrentTenant) -> TenantMetricsOut:
    return await service.tenant_metrics(ctx, tenant)
