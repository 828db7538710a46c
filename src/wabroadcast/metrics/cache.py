"""The per-tenant cache of the metrics endpoint.

Dashboards poll every few seconds, often several tabs per tenant; the cache
makes that one set of queries per tenant per cache period, whatever the number
of pollers. Time comes from the app's clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

from datetime import datetime

from wabroadcast.metrics.schemas import TenantMetricsOut

# Expired entries are swept once the cache holds this many tenants.
SWEEP_ABOVE = 1024


class TenantMetricsCache:
    """The last metrics computed for each tenant, keyed by tenant id."""

    def __init__(self) -> None:
        self._entries: dict[int, TenantMetricsOut] = {}

    def get(self, tenant_id: int, now: datetime, max_age_s: float) -> TenantMetricsOut | None:
        """The tenant's entry if it is younger than ``max_age_s`` at ``now``, else None.

        An entry from the future (a clock set back) is not trusted either.
        """
        entry = self._entries.get(tenant_id)
        if entry is None or not _is_fresh(entry, now, max_age_s):
            return None
        return entry

    def put(self, tenant_id: int, metrics: TenantMetricsOut, max_age_s: float) -> None:
        if max_age_s <= 0:
            return
        self._entries[tenant_id] = metrics
        if len(self._entries) > SWEEP_ABOVE:
            now = metrics.generated_at
            self._entries = {
                tid: entry
                for tid, entry in self._entries.items()
                if _is_fresh(entry, now, max_age_s)
            }


def _is_fresh(entry: TenantMetricsOut, now: datetime, max_age_s: float) -> bool:
    age_s = (now - entry.generated_at).total_seconds()
    return 0 <= age_s < max_age_s
