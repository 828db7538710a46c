"""All SQL about rate-limit buckets (PostgreSQL: the buckets several API processes share).

A take is one statement: insert a full bucket less one token, or refill the
existing one and take a token only if one is there (``ON CONFLICT ... DO
UPDATE ... WHERE``). The row lock of that upsert is what makes concurrent
processes count against the same tokens. The sums are ``bucket.take``'s.
"""

from __future__ import annotations

from sqlalchemy import Float, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from wabroadcast.db.models import RateLimitBucket, table_of
from wabroadcast.ratelimit.bucket import EPSILON, Limit

_TABLE = table_of(RateLimitBucket)
_SECONDS = Float(precision=53)


def _take_statement() -> ReturningInsert[float]:
    now = bindparam("now", type_=_SECONDS)
    capacity = bindparam("capacity", type_=_SECONDS)
    refilled = func.least(
        capacity,
        _TABLE.c.tokens
        + func.greatest(0.0, now - _TABLE.c.updated_at) * bindparam("per_second", type_=_SECONDS),
    )
    return (
        insert(_TABLE)
        .values(bucket_key=bindparam("key"), tokens=capacity - 1.0, updated_at=now)
        .on_conflict_do_update(
            index_elements=[_TABLE.c.bucket_key],
            set_={"tokens": refilled - 1.0, "updated_at": func.greatest(_TABLE.c.updated_at, now)},
            where=refilled >= 1.0 - EPSILON,
        )
        .returning(_TABLE.c.tokens)
    )


# Built once: composing this statement costs more than running it, on every API request.
_TAKE = _take_statement()
_GET = select(_TABLE.c.tokens, _TABLE.c.updated_at).where(_TABLE.c.bucket_key == bindparam("key"))


class RateLimitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take(self, key: str, now: float, limit: Limit) -> float | None:
        """Take one token from ``key``'s bucket: the tokens left, or None if it had none."""
        result = await self.session.execute(
            _TAKE,
            {
                "key": key,
                "now": now,
                "capacity": float(limit.capacity),
                "per_second": limit.per_second,
            },
        )
        tokens = result.scalar_one_or_none()
        return None if tokens is None else float(tokens)

    async def get(self, key: str) -> tuple[float, float] | None:
        """The bucket's stored tokens and time, if it has a row."""
        row = (await self.session.execute(_GET, {"key": key})).one_or_none()
        return None if row is None else (float(row[0]), float(row[1]))

    async def purge(self, prefix: str, before: float) -> int:
        """Delete ``prefix``'s buckets last used before ``before`` (full by then anyway)."""
        result = await self.session.execute(
            delete(_TABLE).where(
                _TABLE.c.updated_at < before,
                _TABLE.c.bucket_key.startswith(prefix, autoescape=True),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
