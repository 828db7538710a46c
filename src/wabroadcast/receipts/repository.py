"""All SQL of receipts: find recipients by provider message id, write their new state.

Rows are read as plain snapshots, not ORM objects, so a caller's identity map
never holds a stale recipient after the conditional UPDATEs here. On
PostgreSQL the recipients a batch will change are locked (``FOR UPDATE``, in id
order so two batches cannot deadlock on each other) between the SELECT and the
UPDATE; on SQLite the ``BEGIN IMMEDIATE`` write transaction already serializes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.engine import is_postgres
from wabroadcast.db.models import (
    InboundMessageRow,
    PendingReceipt,
    WhatsAppBroadcastRecipient,
    table_of,
)

R = WhatsAppBroadcastRecipient
# One IN list per this many ids: far below every backend's bound-parameter limit.
LOOKUP_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """What a receipt needs to know about one recipient."""

    id: int
    broadcast_id: int
    tenant_id: int
    phone: str
    lead_id: int | None
    provider_message_id: str
    status: str
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class RecipientWrite:
    """A recipient's new receipt-owned columns, written only if its status is still ``expected``."""

    id: int
    expected_status: str
    status: str
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    error_code: str | None
    error_message: str | None


class ConcurrentRecipientChange(RuntimeError):
    """A recipient changed between the batch's SELECT and its UPDATE; the batch must roll back."""


class ReceiptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _is_postgres(self) -> bool:
        return is_postgres(self.session)

    async def recipients_by_provider_ids(
        self, session_id: str, provider_message_ids: Collection[str]
    ) -> list[RecipientRow]:
        """The session's recipients carrying these provider message ids, locked for update."""
        ids = sorted(set(provider_message_ids))
        rows: list[RecipientRow] = []
        for start in range(0, len(ids), LOOKUP_CHUNK):
            query = (
                select(
                    R.id,
                    R.broadcast_id,
                    R.tenant_id,
                    R.phone,
                    R.lead_id,
                    R.provider_message_id,
                    R.status,
                    R.delivered_at,
                    R.read_at,
                    R.failed_at,
                    R.error_code,
                    R.error_message,
                )
                .where(
                    R.session_id == session_id,
                    # Spelled out so both backends use the partial index on this column.
                    R.provider_message_id.is_not(None),
                    R.provider_message_id.in_(ids[start : start + LOOKUP_CHUNK]),
                )
                .order_by(R.id)
            )
            if self._is_postgres:
                query = query.with_for_update(of=R)
            result = await self.session.execute(query)
            rows.extend(RecipientRow(**row._asdict()) for row in result)
        return rows

    async def write_recipients(self, writes: Sequence[RecipientWrite], at: datetime) -> None:
        """One executemany UPDATE, each row fenced by the status it was read with."""
        if not writes:
            return
        table = R.__table__
        assert isinstance(table, Table)
        statement = (
            update(table)
            .where(table.c.id == bindparam("w_id"), table.c.status == bindparam("w_expected"))
            .values(
                status=bindparam("w_status"),
                delivered_at=bindparam("w_delivered_at"),
                read_at=bindparam("w_read_at"),
                failed_at=bindparam("w_failed_at"),
                error_code=bindparam("w_error_code"),
                error_message=bindparam("w_error_message"),
                updated_at=bindparam("w_updated_at"),
            )
        )
        params = [
            {
                "w_id": w.id,
                "w_expected": w.expected_status,
                "w_status": w.status,
                "w_delivered_at": w.delivered_at,
                "w_read_at": w.read_at,
                "w_failed_at": w.failed_at,
                "w_error_code": w.error_code,
                "w_error_message": w.error_message,
                "w_updated_at": at,
            }
            for w in writes
        ]
        result = await self.session.execute(statement, params)
        changed = int(getattr(result, "rowcount", -1))
        if changed != len(writes):
            raise ConcurrentRecipientChange(
                f"{len(writes) - changed} of {len(writes)} recipients changed during the batch"
            )

    # --- receipts that came before their send was recorded -----------------------

    async def keep_pending(self, receipts: Sequence[PendingReceipt]) -> None:
        self.session.add_all(receipts)
        await self.session.flush()

    async def pending(self, limit: int) -> list[PendingReceipt]:
        """The oldest pending receipts; on PostgreSQL locked, skipping other workers'."""
        query = select(PendingReceipt).order_by(PendingReceipt.id).limit(limit)
        if self._is_postgres:
            query = query.with_for_update(skip_locked=True)
        return list((await self.session.execute(query)).scalars())

    async def forget_pending(self, ids: Sequence[int]) -> None:
        for start in range(0, len(ids), LOOKUP_CHUNK):
            await self.session.execute(
                delete(PendingReceipt)
                .where(PendingReceipt.id.in_(ids[start : start + LOOKUP_CHUNK]))
                .execution_options(synchronize_session=False)
            )

    # --- messages people sent to our numbers ---------------------------------------

    async def keep_inbound(self, rows: Sequence[dict[str, object]]) -> set[tuple[str, str]]:
        """Store inbound messages; one a provider reports again is kept once. The
        (session_id, provider_message_id) of those stored now, not seen before."""
        if not rows:
            return set()
        table = table_of(InboundMessageRow)
        statement = (pg_insert(table) if self._is_postgres else sqlite_insert(table)).values(
            list(rows)
        )
        result = await self.session.execute(
            statement.on_conflict_do_nothing(
                index_elements=["session_id", "provider_message_id"]
            ).returning(table.c.session_id, table.c.provider_message_id)
        )
        return {(str(session_id), str(message_id)) for session_id, message_id in result.all()}
