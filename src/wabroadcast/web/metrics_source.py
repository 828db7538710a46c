"""Where the dashboard gets its numbers: the service behind ``GET /api/whatsapp/metrics``.

The same cached, index-backed queries serve the API, the tiles and the chart,
so the dashboard never shows a number the API would not.
"""

from __future__ import annotations

from wabroadcast.context import AppContext
from wabroadcast.metrics import service
from wabroadcast.metrics.schemas import MinuteCount, TenantMetricsOut
from wabroadcast.tenants.service import TenantContext

TileMetrics = TenantMetricsOut
MinuteCounts = MinuteCount


async def tenant_metrics(ctx: AppContext, tenant: TenantContext) -> TileMetrics:
    """Recipients pending, sent/failed/delivered in the last 5 minutes, active broadcasts."""
    return await service.tenant_metrics(ctx, tenant)


async def sends_per_minute(ctx: AppContext, tenant: TenantContext) -> list[MinuteCounts]:
    """Sent and failed in each of the last 60 minutes, oldest first, zeros included."""
    return await service.sends_per_minute(ctx, tenant)
