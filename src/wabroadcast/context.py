"""What an entry point (API app, worker, CLI command) hands to the services it calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from wabroadcast.clock import Clock
from wabroadcast.config import Settings
from wabroadcast.db.engine import Database
from wabroadcast.metrics.cache import TenantMetricsCache
from wabroadcast.providers.registry import Providers


@dataclass(frozen=True, slots=True)
class AppContext:
    settings: Settings
    database: Database
    clock: Clock
    providers: Providers
    # One per app, so the API and the dashboard of one process share it.
    metrics_cache: TenantMetricsCache = field(default_factory=TenantMetricsCache)
