"""All SQL about broadcasts, their recipients and client idempotency keys."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.copy import copy_lines, copy_text
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    IdempotencyRequest,
    UTCDateTime,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    table_of,
)
from wabroadcast.domain.recipients import ValidRecipient
from wabroadcast.domain.status import (
    SETTLED_BROADCAST_STATUSES,
    BroadcastStatus,
    RecipientStatus,
)

_RECIPIENT_COPY_COLUMNS = (
    "broadcast_id",
    "tenant_id",
    "session_id",
    "raw_input",
    "phone",
    "lead_id",
    "name",
    "status",
    "attempts",
    "next_attempt_at",
    "queued_at",
    "updated_at",
)


class BroadcastRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def lock_content(self, lock_id: int) -> None:
        """Serialize identical create requests until this transaction ends.

        PostgreSQL: a transaction-scoped advisory lock (released at commit or
        rollback, so it cannot leak through the pool). SQLite: the write
        transaction already holds the database's single write lock.
        """
        if self._dialect == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    async def add_broadcast(self, broadcast: WhatsAppBroadcast) -> WhatsAppBroadcast:
        self.session.add(broadcast)
        await self.session.flush()
        return broadcast

    async def has_recent_same_message(
        self, tenant_id: int, session_id: str, message: str, created_since: datetime
    ) -> bool:
        """Whether a broadcast with this exact message was created on the session lately."""
        result = await self.session.execute(
            select(WhatsAppBroadcast.id)
            .where(
                WhatsAppBroadcast.tenant_id == tenant_id,
                WhatsAppBroadcast.created_at >= created_since,
                WhatsAppBroadcast.session_id == session_id,
                WhatsAppBroadcast.message == message,
            )
            .limit(1)
        )
        return result.first() is not None

    async def add_recipients(
        self, broadcast: WhatsAppBroadcast, recipients: Sequence[ValidRecipient], at: datetime
    ) -> None:
        """Insert recipient rows as ``queued``; COPY on PostgreSQL, executemany on SQLite."""
        status = RecipientStatus.QUEUED.value
        broadcast_id, tenant_id, session_id = (
            broadcast.id,
            broadcast.tenant_id,
            broadcast.session_id,
        )
        if self._dialect == "postgresql":
            await self._copy_recipients(broadcast_id, tenant_id, session_id, recipients, at)
            return
        rows = [
            {
                "broadcast_id": broadcast_id,
                "tenant_id": tenant_id,
                "session_id": session_id,
                "raw_input": r.raw_input,
                "phone": r.phone,
                "lead_id": r.lead_id,
                "name": r.name,
                "status": status,
                "attempts": 0,
                "next_attempt_at": at,
                "queued_at": at,
                "updated_at": at,
            }
            for r in recipients
        ]
        await self.session.execute(insert(WhatsAppBroadcastRecipient), rows)

    async def _copy_recipients(
        self,
        broadcast_id: int,
        tenant_id: int,
        session_id: str,
        recipients: Sequence[ValidRecipient],
        at: datetime,
    ) -> None:
        """COPY in one write: the constant columns are formatted once, not per row."""
        constant_head = f"{broadcast_id}\t{tenant_id}\t{copy_text(session_id)}\t"
        stamp = at.isoformat()
        constant_tail = f"\t{RecipientStatus.QUEUED.value}\t0\t{stamp}\t{stamp}\t{stamp}\n"
        lines = [
            constant_head
            + copy_text(r.raw_input)
            + "\t"
            + r.phone
            + "\t"
            + ("\\N" if r.lead_id is None else str(r.lead_id))
            + "\t"
            + ("\\N" if r.name is None else copy_text(r.name))
            + constant_tail
            for r in recipients
        ]
        await copy_lines(
            self.session, "whatsapp_broadcast_recipients", _RECIPIENT_COPY_COLUMNS, lines
        )

    async def cancel_queued(self, broadcast_id: int, now: datetime) -> int:
        """Every still-queued recipient of the broadcast becomes ``cancelled``."""
        rows = (
            await self.session.execute(
                update(WhatsAppBroadcastRecipient)
                .where(
                    WhatsAppBroadcastRecipient.broadcast_id == broadcast_id,
                    WhatsAppBroadcastRecipient.status == RecipientStatus.QUEUED.value,
                )
                .values(status=RecipientStatus.CANCELLED.value, updated_at=now)
                .returning(WhatsAppBroadcastRecipient.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if rows:
            await shift_counts(
                self.session,
                {broadcast_id: {(RecipientStatus.QUEUED, RecipientStatus.CANCELLED): len(rows)}},
                now,
            )
        return len(rows)

    async def get_for_update(self, tenant_id: int, broadcast_id: int) -> WhatsAppBroadcast | None:
        result = await self.session.execute(
            select(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.tenant_id == tenant_id, WhatsAppBroadcast.id == broadcast_id)
            .with_for_update()
        )
        return result.scalar_one_or_none()

    async def get(self, tenant_id: int, broadcast_id: int) -> WhatsAppBroadcast | None:
        result = await self.session.execute(
            select(WhatsAppBroadcast).where(
                WhatsAppBroadcast.tenant_id == tenant_id, WhatsAppBroadcast.id == broadcast_id
            )
        )
        return result.scalar_one_or_none()

    async def find_by_content_keys(
        self, tenant_id: int, keys: Sequence[str], created_since: datetime
    ) -> WhatsAppBroadcast | None:
        """The newest broadcast stored under one of ``keys`` since ``created_since``."""
        result = await self.session.execute(
            select(WhatsAppBroadcast)
            .where(
                WhatsAppBroadcast.idempotency_key.in_(keys),
                WhatsAppBroadcast.tenant_id == tenant_id,
                WhatsAppBroadcast.created_at >= created_since,
            )
            .order_by(WhatsAppBroadcast.id.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def set_status(
        self, broadcast: WhatsAppBroadcast, status: BroadcastStatus, at: datetime
    ) -> None:
        broadcast.status = status.value
        broadcast.updated_at = at
        if status is BroadcastStatus.QUEUED:
            broadcast.queued_at = at
        await self.session.flush()

    async def list_page(
        self,
        tenant_id: int,
        *,
        status: BroadcastStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[WhatsAppBroadcast]:
        query = select(WhatsAppBroadcast).where(WhatsAppBroadcast.tenant_id == tenant_id)
        if status is not None:
            query = query.where(WhatsAppBroadcast.status == status.value)
        if before_id is not None:
            query = query.where(WhatsAppBroadcast.id < before_id)
        result = await self.session.execute(
            query.order_by(WhatsAppBroadcast.id.desc()).limit(limit)
        )
        return list(result.scalars())

    async def recipients(
        self,
        broadcast_id: int,
        *,
        status: RecipientStatus | None,
        after_id: int | None,
        limit: int,
    ) -> list[WhatsAppBroadcastRecipient]:
        query = select(WhatsAppBroadcastRecipient).where(
            WhatsAppBroadcastRecipient.broadcast_id == broadcast_id
        )
        if status is not None:
            query = query.where(WhatsAppBroadcastRecipient.status == status.value)
        if after_id is not None:
            query = query.where(WhatsAppBroadcastRecipient.id > after_id)
        result = await self.session.execute(
            query.order_by(WhatsAppBroadcastRecipient.id).limit(limit)
        )
        return list(result.scalars())


COUNT_COLUMNS: dict[RecipientStatus, str] = {
    RecipientStatus.QUEUED: "queued_count",
    RecipientStatus.SENDING: "sending_count",
    RecipientStatus.SENT: "sent_count",
    RecipientStatus.DELIVERED: "delivered_count",
    RecipientStatus.READ: "read_count",
    RecipientStatus.FAILED: "failed_count",
    RecipientStatus.CANCELLED: "cancelled_count",
}


# The counters of any number of broadcasts in one statement (PostgreSQL): each row
# takes its deltas from a JSON array of [id, queued, sending, sent, delivered, read,
# failed, cancelled]. The rows are locked first, in id order, by SHIFT_LOCK_POSTGRES.
SHIFT_COUNTS_POSTGRES = text(
    """
    UPDATE whatsapp_broadcasts AS b
    SET queued_count = b.queued_count + d.queued,
        sending_count = b.sending_count + d.sending,
        sent_count = b.sent_count + d.sent,
        delivered_count = b.delivered_count + d.delivered,
        read_count = b.read_count + d.read,
        failed_count = b.failed_count + d.failed,
        cancelled_count = b.cancelled_count + d.cancelled,
        updated_at = :at
    FROM (
        SELECT (v ->> 0)::bigint AS id, (v ->> 1)::int AS queued, (v ->> 2)::int AS sending,
               (v ->> 3)::int AS sent, (v ->> 4)::int AS delivered, (v ->> 5)::int AS read,
               (v ->> 6)::int AS failed, (v ->> 7)::int AS cancelled
        FROM json_array_elements(CAST(:deltas AS json)) AS v
    ) AS d
    WHERE b.id = d.id
    """
).bindparams(bindparam("at", type_=UTCDateTime()))
# Every writer of broadcast rows locks them in id order, so none deadlocks another.
SHIFT_LOCK_POSTGRES = text(
    "SELECT id FROM whatsapp_broadcasts "
    "WHERE id = ANY(ARRAY(SELECT CAST(json_array_elements_text(CAST(:ids AS json)) AS bigint))) "
    "ORDER BY id FOR UPDATE"
)
# The order of the deltas in each row of SHIFT_COUNTS_POSTGRES.
SHIFTED_COLUMNS = (
    "queued_count",
    "sending_count",
    "sent_count",
    "delivered_count",
    "read_count",
    "failed_count",
    "cancelled_count",
)


async def shift_counts(
    session: AsyncSession,
    moves: Mapping[int, Mapping[tuple[RecipientStatus, RecipientStatus], int]],
    at: datetime,
    *,
    locked: bool = False,
) -> None:
    """Keep a broadcast's per-status counters equal to its recipients' statuses.

    ``moves[broadcast_id][(old, new)] = n`` says n recipients moved from old to
    new in this transaction. Counters change by relative UPDATEs in the same
    transaction as the recipient rows, so they stay exact under concurrency.
    ``locked``: the caller has locked these broadcasts already (in id order).
    """
    deltas: dict[int, dict[str, int]] = {}
    for broadcast_id in sorted(moves):
        delta: dict[str, int] = defaultdict(int)
        for (old, new), count in moves[broadcast_id].items():
            if count and old is not new:
                delta[COUNT_COLUMNS[old]] -= count
                delta[COUNT_COLUMNS[new]] += count
        changed = {name: change for name, change in delta.items() if change}
        if changed:
            deltas[broadcast_id] = changed
    if not deltas:
        return
    if is_postgres(session):
        # Two statements for any number of broadcasts: a thousand sessions' results
        # in one transaction touch a thousand broadcasts.
        if not locked:
            await session.execute(SHIFT_LOCK_POSTGRES, {"ids": json.dumps(list(deltas))})
        await session.execute(
            SHIFT_COUNTS_POSTGRES,
            {
                "deltas": json.dumps(
                    [
                        [broadcast_id, *(changed.get(name, 0) for name in SHIFTED_COLUMNS)]
                        for broadcast_id, changed in deltas.items()
                    ]
                ),
                "at": at,
            },
        )
        return
    # Columns changed -> (broadcast, their deltas), so broadcasts that moved the same
    # way (most often sending -> sent) share one statement, run for all of them.
    groups: dict[tuple[str, ...], list[tuple[int, dict[str, int]]]] = defaultdict(list)
    for broadcast_id, changed in deltas.items():
        groups[tuple(sorted(changed))].append((broadcast_id, changed))
    table = table_of(WhatsAppBroadcast)
    for columns, rows in groups.items():
        values: dict[str, Any] = {name: table.c[name] + bindparam(f"d_{name}") for name in columns}
        values["updated_at"] = at
        statement = update(table).where(table.c.id == bindparam("bid")).values(values)
        await session.execute(
            statement,
            [
                {"bid": broadcast_id, **{f"d_{name}": changed[name] for name in columns}}
                for broadcast_id, changed in rows
            ],
        )


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


async def resettle(
    session: AsyncSession, broadcast_ids: Sequence[int], at: datetime
) -> list[tuple[int, str, int, int]]:
    """Finished broadcasts whose counts late receipts changed take the outcome the counts
    now say (``domain.status.final_broadcast_status`` in SQL); (id, status, sent, failed)
    of each one that moved. Call after ``shift_counts``, in its transaction.
    """
    if not broadcast_ids:
        return []
    b = WhatsAppBroadcast
    sent = b.sent_count + b.delivered_count + b.read_count
    outcome = case(
        (and_(sent > 0, b.failed_count == 0), BroadcastStatus.COMPLETED.value),
        (sent > 0, BroadcastStatus.PARTIAL.value),
        else_=BroadcastStatus.FAILED.value,
    )
    result = await session.execute(
        update(b)
        .where(
            one_of(session, b.id, sorted(broadcast_ids)),
            b.status.in_(sorted(s.value for s in SETTLED_BROADCAST_STATUSES)),
            b.status != outcome,
        )
        .values(status=outcome, updated_at=at)
        .returning(b.id, b.status, sent, b.failed_count)
        .execution_options(synchronize_session=False)
    )
    return [(int(i), str(status), int(n), int(f)) for i, status, n, f in result.all()]
