"""What an entry point (API app, worker, CLI command) hands to the services it calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from wabroadcast.clock import Clock
from wabroadcast.config import Settings
from wabroadcast.crypto import LazySecretBox
from wabroadcast.db.engine import Database
from wabroadcast.metrics.cache import MetricsCache
from wabroadcast.providers.registry import Providers
from wabroadcast.ratelimit.service import RateLimits
from wabroadcast.sessions.config import SessionRefs


@dataclass(frozen=True, slots=True)
class AppContext:
    settings: Settings
    database: Database
    clock: Clock
    providers: Providers
    # Decrypts provider secrets (made on first use: see crypto.LazySecretBox).
    secrets: LazySecretBox
    session_refs: SessionRefs
    # API and sign-in rate limits (see ratelimit.service).
    rate_limits: RateLimits
    metrics_cache: MetricsCache = field(default_factory=MetricsCache)
