"""Broadcast and recipient rows: writes on create and cancel, reads for the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.db.copy import copy_lines, copy_rows, copy_text
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.quiet_hours import ZONE_RECIPIENT, phone_zone
from wabroadcast.domain.recipients import ValidRecipient
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus

_RECIPIENT_COPY_COLUMNS = (
    "broadcast_id",
    "tenant_id",
    "session_id",
    "raw_input",
    "phone",
    "lead_id",
    "name",
    "rendered_message",
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
        """Insert recipient rows as ``queued``; COPY on PostgreSQL, executemany on SQLite.

        Only a broadcast with quiet hours in its recipients' zones stores each one's
        zone (from the number's country); the others skip that work entirely.
        """
        status = RecipientStatus.QUEUED.value
        broadcast_id, tenant_id, session_id = (
            broadcast.id,
            broadcast.tenant_id,
            broadcast.session_id,
        )
        if broadcast.quiet_hours_zone == ZONE_RECIPIENT:
            await self._add_recipients_with_zones(broadcast, recipients, at)
            return
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
                "rendered_message": r.message,
                "status": status,
                "attempts": 0,
                "next_attempt_at": at,
                "queued_at": at,
                "updated_at": at,
            }
            for r in recipients
        ]
        await self.session.execute(insert(WhatsAppBroadcastRecipient), rows)

    async def _add_recipients_with_zones(
        self, broadcast: WhatsAppBroadcast, recipients: Sequence[ValidRecipient], at: datetime
    ) -> None:
        """``add_recipients`` with each recipient's ``time_zone`` (``domain.quiet_hours``)."""
        status = RecipientStatus.QUEUED.value
        rows = [
            (
                broadcast.id,
                broadcast.tenant_id,
                broadcast.session_id,
                r.raw_input,
                r.phone,
                r.lead_id,
                r.name,
                r.message,
                status,
                0,
                at,
                at,
                at,
                phone_zone(r.phone),
            )
            for r in recipients
        ]
        columns = (*_RECIPIENT_COPY_COLUMNS, "time_zone")
        if self._dialect == "postgresql":
            await copy_rows(self.session, "whatsapp_broadcast_recipients", columns, rows)
            return
        await self.session.execute(
            insert(WhatsAppBroadcastRecipient),
            [dict(zip(columns, row, strict=True)) for row in rows],
        )

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
            + "\t"
            + ("\\N" if r.message is None else copy_text(r.message))
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
