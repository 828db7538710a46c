"""The per-tenant caches of the metrics and the per-minute chart.

Dashboards poll every few seconds, often several tabs per tenant; the caches
make that one set of queries per tenant per cache period, whatever the number
of pollers. Time comes from the app's clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from wabroadcast.metrics.schemas import MinuteCount, TenantMetricsOut

K = TypeVar("K")
V = TypeVar("V")

# Expired entries are swept once a cache holds this many keys.
SWEEP_ABOVE = 1024


class TimedCache(Generic[K, V]):
    """Values with the time they were computed, reused while younger than a maximum age."""

    def __init__(self) -> None:
        self._entries: dict[K, tuple[datetime, V]] = {}

    def get(self, key: K, now: datetime, max_age_s: float) -> V | None:
        """The value for ``key`` if it is younger than ``max_age_s`` at ``now``, else None.

        A value from the future (the clock was set back) is not trusted either.
        """
        entry = self._entries.get(key)
        if entry is None or not _is_fresh(entry[0], now, max_age_s):
            return None
        return entry[1]

    def put(self, key: K, value: V, computed_at: datetime, max_age_s: float) -> None:
        if max_age_s <= 0:
            return
        self._entries[key] = (computed_at, value)
        if len(self._entries) > SWEEP_ABOVE:
            self._entries = {
                k: entry
                for k, entry in self._entries.items()
                if _is_fresh(entry[0], computed_at, max_age_s)
            }


def _is_fresh(computed_at: datetime, now: datetime, max_age_s: float) -> bool:
    age_s = (now - computed_at).total_seconds()
    return 0 <= age_s < max_age_s


@dataclass(frozen=True, slots=True)
class MetricsCache:
    """One per app, so the API and the dashboard of one process share it."""

    tenant_metrics: TimedCache[int, TenantMetricsOut] = field(default_factory=TimedCache)
    # By (tenant id, number of minutes).
    sends_per_minute: TimedCache[tuple[int, int], tuple[MinuteCount, ...]] = field(
        default_factory=TimedCache
    )
