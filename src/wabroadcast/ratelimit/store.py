"""Where buckets live: in the database (PostgreSQL, shared by every API process)
or in this process's memory (the embedded SQLite default, which one process serves).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from wabroadcast.db.engine import Database
from wabroadcast.ratelimit import bucket
from wabroadcast.ratelimit.bucket import Limit, Take
from wabroadcast.ratelimit.repository import RateLimitRepository

# Bucket writes use a connection of their own, never the request's transaction,
# and do not wait for the disk: a bucket lost in a server crash only means a
# caller gets a fresh one, while a flush per API request would cost every caller.
# Each statement is atomic by itself, so it runs in autocommit: no BEGIN and no
# COMMIT round trips around the one statement an API request pays for.
RATE_LIMIT_LANE = "rate-limits"
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class BucketStore(Protocol):
    async def take(self, key: str, now: float, limit: Limit) -> Take:
        """Take one token from ``key``'s bucket if it has one."""
        ...

    async def peek(self, key: str, now: float, limit: Limit) -> Take:
        """Whether ``key``'s bucket has a token, taking none."""
        ...

    async def purge(self, limit: Limit, before: float) -> int:
        """Forget ``limit``'s buckets last used before ``before``; how many were."""
        ...


class MemoryBuckets:
    """Buckets in a dict; each operation runs without awaiting, so it is atomic."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, now: float, limit: Limit) -> Take:
        tokens, updated_at = self._buckets.get(key) or bucket.full(now, limit)
        taken = bucket.take(tokens, updated_at, now, limit)
        if taken.allowed:
            self._buckets[key] = (taken.tokens, taken.updated_at)
        return taken

    async def peek(self, key: str, now: float, limit: Limit) -> Take:
        tokens, updated_at = self._buckets.get(key) or bucket.full(now, limit)
        return bucket.peek(tokens, updated_at, now, limit)

    async def purge(self, limit: Limit, before: float) -> int:
        prefix = limit.key("")
        idle = [
            key
            for key, (_, updated_at) in self._buckets.items()
            if updated_at < before and key.startswith(prefix)
        ]
        for key in idle:
            del self._buckets[key]
        return len(idle)

    def keys(self) -> set[str]:
        """The keys of the buckets it holds (for tests and debugging)."""
        return set(self._buckets)


class DatabaseBuckets:
    """Buckets in ``rate_limit_buckets``: a take is one statement (two when refused)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def _repository(self) -> AsyncIterator[RateLimitRepository]:
        async with self._database.control_transaction(RATE_LIMIT_LANE, wait_for_flush=False) as db:
            await db.connection(execution_options=_AUTOCOMMIT)
            yield RateLimitRepository(db)

    async def take(self, key: str, now: float, limit: Limit) -> Take:
        async with self._repository() as repo:
            left = await repo.take(key, now, limit)
            if left is not None:
                return Take(True, left, now, 0)
            stored = await repo.get(key)
        if stored is None:  # purged in between: the next attempt finds a full bucket
            return Take(False, 0.0, now, 1)
        looked = bucket.peek(*stored, now, limit)
        return Take(False, looked.tokens, looked.updated_at, max(1, looked.retry_after_s))

    async def peek(self, key: str, now: float, limit: Limit) -> Take:
        async with self._repository() as repo:
            stored = await repo.get(key)
        tokens, updated_at = stored or bucket.full(now, limit)
        return bucket.peek(tokens, updated_at, now, limit)

    async def purge(self, limit: Limit, before: float) -> int:
        async with self._repository() as repo:
            return await repo.purge(limit.key(""), before)
