"""Metrics use cases: a tenant's numbers for the API and dashboard, and the per-minute chart.

Windows are half-open on the past side and closed at "now": "the last 5
minutes" is ``(now - 5 min, now]``, so an event exactly 5 minutes old is out,
one a microsecond younger is in, and one stamped after now (a worker whose
clock runs ahead) is not counted until its time comes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.metrics.repository import MetricsRepository
from wabroadcast.metrics.schemas import RECENT_WINDOW_S, MinuteCount, TenantMetricsOut
from wabroadcast.observability import prometheus
from wabroadcast.observability.logging import get_logger

if TYPE_CHECKING:
    from wabroadcast.context import AppContext
    from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.metrics")

RECENT_WINDOW = timedelta(seconds=RECENT_WINDOW_S)
MAX_CHART_MINUTES = 24 * 60
# A scrape still answers, without the database gauges, when the database is this slow.
SCRAPE_DATABASE_TIMEOUT_S = 3.0


async def tenant_metrics(ctx: AppContext, tenant: TenantContext) -> TenantMetricsOut:
    """The tenant's metrics, from the cache while it is younger than the cache period."""
    now = ctx.clock.now()
    max_age_s = ctx.settings.metrics_cache_s
    cache = ctx.metrics_cache.tenant_metrics
    cached = cache.get(tenant.tenant_id, now, max_age_s)
    if cached is not None:
        return cached.model_copy(update={"cached": True})
    async with ctx.database.transaction() as db:
        counts = await MetricsRepository(db).tenant_counts(
            tenant.tenant_id, since=now - RECENT_WINDOW, until=now
        )
    metrics = TenantMetricsOut(
        pending_count=counts.pending,
        sent_last_5m=counts.sent,
        failed_last_5m=counts.failed,
        delivered_last_5m=counts.delivered,
        active_broadcasts=counts.active_broadcasts,
        generated_at=now,
        cached=False,
    )
    cache.put(tenant.tenant_id, metrics, now, max_age_s)
    return metrics


async def sends_per_minute(
    ctx: AppContext, tenant: TenantContext, minutes: int = 60
) -> list[MinuteCount]:
    """Sent and failed per minute, oldest first, for the ``minutes`` minutes up to now.

    Every minute is present, zeros included. The last one is the current,
    still running minute; each covers ``[minute, minute + 1 min)``, and events
    stamped after now are left out. Cached per tenant like ``tenant_metrics``
    (``WABROADCAST_METRICS_CACHE_S``): an hour of a tenant sending hundreds a
    second is close to a million index entries to count (about 200 ms).
    """
    if not 1 <= minutes <= MAX_CHART_MINUTES:
        raise ValidationFailed(
            f"minutes: must be between 1 and {MAX_CHART_MINUTES}",
            details={"field": "minutes", "value": minutes},
        )
    now = ctx.clock.now()
    max_age_s = ctx.settings.metrics_cache_s
    cache = ctx.metrics_cache.sends_per_minute
    cached = cache.get((tenant.tenant_id, minutes), now, max_age_s)
    if cached is not None:
        return list(cached)
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    async with ctx.database.transaction() as db:
        repo = MetricsRepository(db)
        sent = await repo.events_per_minute(tenant.tenant_id, "sent", since=first, until=now)
        failed = await repo.events_per_minute(tenant.tenant_id, "failed", since=first, until=now)
    starts = [first + timedelta(minutes=i) for i in range(minutes)]
    chart = tuple(
        MinuteCount(minute=start, sent=sent.get(start, 0), failed=failed.get(start, 0))
        for start in starts
    )
    cache.put((tenant.tenant_id, minutes), chart, now, max_age_s)
    return list(chart)


async def prometheus_exposition(ctx: AppContext, accept: str | None) -> tuple[bytes, str]:
    """Everything recorded in the Prometheus format, with the backlog read from the database.

    A database that cannot be read leaves out the backlog gauges and sets
    ``wabroadcast_database_up`` to 0: the dispatcher's own numbers are most
    needed exactly then.
    """
    gauges: prometheus.DatabaseGauges | None = None
    try:
        async with asyncio.timeout(SCRAPE_DATABASE_TIMEOUT_S):
            async with ctx.database.transaction() as db:
                backlog = await MetricsRepository(db).backlog_by_tenant()
        gauges = prometheus.DatabaseGauges(
            pending_by_tenant={row.tenant_id: row.pending for row in backlog},
            active_broadcasts_by_tenant={row.tenant_id: row.active_broadcasts for row in backlog},
        )
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        log.warning("metrics scrape without database gauges", error=type(exc).__name__)
    return prometheus.render(gauges, accept)
