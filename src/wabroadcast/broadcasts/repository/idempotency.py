"""Client ``Idempotency-Key`` rows: a retried request gets the first one's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import IdempotencyRequest


class IdempotencyRepository:
    """Client ``Idempotency-Key`` rows: claim, read, complete, release."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_claim(
        self, *, tenant_id: int, key: str, request_hash: str, at: datetime, expires_at: datetime
    ) -> bool:
        """Insert an in-flight row; False if the key already has one."""
        values = {
            "tenant_id": tenant_id,
            "key": key,
            "request_hash": request_hash,
            "state": "in_flight",
            "created_at": at,
            "expires_at": expires_at,
        }
        dialect = self.session.get_bind().dialect.name
        statement = (
            pg_insert(IdempotencyRequest)
            if dialect == "postgresql"
            else sqlite_insert(IdempotencyRequest)
        )
        result = await self.session.execute(
            statement.values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
            .returning(IdempotencyRequest.key)
        )
        return result.scalar_one_or_none() is not None

    async def get(self, tenant_id: int, key: str) -> IdempotencyRequest | None:
        result = await self.session.execute(
            select(IdempotencyRequest).where(
                IdempotencyRequest.tenant_id == tenant_id, IdempotencyRequest.key == key
            )
        )
        return result.scalar_one_or_none()

    async def take_over(
        self,
        *,
        tenant_id: int,
        key: str,
        previous_created_at: datetime,
        request_hash: str,
        at: datetime,
        expires_at: datetime,
    ) -> bool:
        """Replace an expired or abandoned row, unless someone else replaced it first."""
        result = await self.session.execute(
            update(IdempotencyRequest)
            .where(
                IdempotencyRequest.tenant_id == tenant_id,
                IdempotencyRequest.key == key,
                IdempotencyRequest.created_at == previous_created_at,
            )
            .values(
                request_hash=request_hash,
                state="in_flight",
                response_status=None,
                response_body=None,
                broadcast_id=None,
                created_at=at,
                expires_at=expires_at,
            )
            .returning(IdempotencyRequest.key)
        )
        return result.scalar_one_or_none() is not None

    async def complete(
        self,
        *,
        tenant_id: int,
        key: str,
        response_status: int,
        response_body: dict[str, Any],
        broadcast_id: int,
    ) -> None:
        await self.session.execute(
            update(IdempotencyRequest)
            .where(IdempotencyRequest.tenant_id == tenant_id, IdempotencyRequest.key == key)
            .values(
                state="completed",
                response_status=response_status,
                response_body=response_body,
                broadcast_id=broadcast_id,
            )
        )

    async def release(self, *, tenant_id: int, key: str, claimed_at: datetime) -> None:
        """Forget our in-flight claim after its request failed, so the client may retry."""
        await self.session.execute(
            delete(IdempotencyRequest).where(
                IdempotencyRequest.tenant_id == tenant_id,
                IdempotencyRequest.key == key,
                IdempotencyRequest.created_at == claimed_at,
                IdempotencyRequest.state == "in_flight",
            )
        )

    async def purge_expired(self, at: datetime) -> int:
        result = await self.session.execute(
            delete(IdempotencyRequest).where(IdempotencyRequest.expires_at < at)
        )
        return int(getattr(result, "rowcount", 0))
