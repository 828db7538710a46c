"""The limits this service enforces, counted in shared token buckets.

* API calls: ``WABROADCAST_RATE_LIMIT_PER_MINUTE`` per tenant (all of its keys,
  a rotated one included, share one bucket); 0 turns the limit off.
* Dashboard sign-in: ``WABROADCAST_SIGNIN_MAX_FAILURES`` failed keys per client
  address per ``WABROADCAST_SIGNIN_WINDOW_S``; only failures take a token, and
  while none is left every attempt from that address is refused.

Buckets idle for a whole window are full, so forgetting them loses nothing:
each process does that at most once a minute per limit, which keeps sign-in
attempts from many addresses from growing the table (or the dict) forever.
"""

from __future__ import annotations

from datetime import datetime

from wabroadcast.config import Settings
from wabroadcast.db.engine import Database
from wabroadcast.domain.errors import RateLimited
from wabroadcast.observability.logging import get_logger
from wabroadcast.ratelimit.bucket import Limit, Take
from wabroadcast.ratelimit.store import BucketStore, DatabaseBuckets, MemoryBuckets

log = get_logger("wabroadcast.ratelimit")

API_WINDOW_S = 60.0
PURGE_EVERY_S = 60.0


class RateLimits:
    """The API and sign-in limits of one process, over a store of buckets."""

    def __init__(self, store: BucketStore, settings: Settings) -> None:
        self.store = store
        per_minute = settings.rate_limit_per_minute
        failures = settings.signin_max_failures
        self.api = Limit("api", per_minute, API_WINDOW_S) if per_minute > 0 else None
        self.signin = (
            Limit("signin", failures, float(settings.signin_window_s)) if failures > 0 else None
        )
        self._purged_at: dict[str, float] = {}

    @classmethod
    def for_database(cls, database: Database, settings: Settings) -> RateLimits:
        """Buckets in PostgreSQL, shared by its API processes; in memory for SQLite."""
        store: BucketStore = MemoryBuckets() if database.is_sqlite else DatabaseBuckets(database)
        return cls(store, settings)

    async def api_call(self, tenant_id: int, now: datetime) -> None:
        """Count one API call of the tenant; ``RateLimited`` when its bucket is empty."""
        if self.api is None:
            return
        taken = await self._take(self.api, str(tenant_id), now)
        if not taken.allowed:
            log.warning(
                "rate limited", limit="api", tenant_id=tenant_id, retry_after_s=taken.retry_after_s
            )
            raise RateLimited(
                f"Too many requests: this API key's tenant may make {self.api.capacity} "
                f"per minute; retry in {taken.retry_after_s} s.",
                retry_after_s=taken.retry_after_s,
            )

    async def signin_wait(self, address: str, now: datetime) -> int:
        """Seconds ``address`` must wait before trying to sign in again; 0: it may now."""
        if self.signin is None:
            return 0
        at = now.timestamp()
        await self._purge_if_due(self.signin, at)
        looked = await self.store.peek(self.signin.key(address), at, self.signin)
        if not looked.allowed:
            self._log_signin(address, looked)
        return looked.retry_after_s

    async def signin_failed(self, address: str, now: datetime) -> int:
        """Count a failed sign-in from ``address``; seconds to wait if none was left, else 0."""
        if self.signin is None:
            return 0
        taken = await self._take(self.signin, address, now)
        if not taken.allowed:
            self._log_signin(address, taken)
        return taken.retry_after_s

    async def _take(self, limit: Limit, subject: str, now: datetime) -> Take:
        at = now.timestamp()
        await self._purge_if_due(limit, at)
        return await self.store.take(limit.key(subject), at, limit)

    async def _purge_if_due(self, limit: Limit, at: float) -> None:
        last = self._purged_at.get(limit.name)
        if last is not None and last <= at < last + PURGE_EVERY_S:
            return
        self._purged_at[limit.name] = at
        await self.store.purge(limit, at - limit.window_s)

    def _log_signin(self, address: str, result: Take) -> None:
        log.warning(
            "sign-in rate limited",
            limit="signin",
            client=address,
            retry_after_s=result.retry_after_s,
        )
