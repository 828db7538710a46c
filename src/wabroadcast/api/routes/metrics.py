"""Metrics routes: a tenant's numbers as JSON, and every process's numbers for Prometheus."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from wabroadcast.api.deps import Ctx, CurrentTenant, MetricsScraper
from wabroadcast.api.routes import tenant_errors
from wabroadcast.metrics import service
from wabroadcast.metrics.schemas import TenantMetricsOut

router = APIRouter(tags=["metrics"])


@router.get(
    "/api/whatsapp/metrics",
    response_model=TenantMetricsOut,
    responses=tenant_errors(),
    summary="Pending, active, and sent / delivered / failed in the last 5 minutes",
    description=(
        "Computed from the database and cached per tenant for `WABROADCAST_METRICS_CACHE_S` "
        "seconds (10 by default); `cached` says whether this answer came from the cache."
    ),
)
async def tenant_metrics(ctx: Ctx, tenant: CurrentTenant) -> TenantMetricsOut:
    return await service.tenant_metrics(ctx, tenant)


# Prometheus's text format is for Prometheus, not for API clients: left out of OpenAPI.
@router.get("/metrics", include_in_schema=False, dependencies=[MetricsScraper])
async def prometheus_metrics(
    ctx: Ctx, accept: Annotated[str | None, Header(max_length=1000)] = None
) -> Response:
    body, content_type = await service.prometheus_exposition(ctx, accept)
    return Response(body, media_type=content_type)
