"""The receipt pump's SQL: due receipts, and sends whose caller died before ending them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.engine import is_postgres
from wabroadcast.providers.simulator.models import SimulatorSend
from wabroadcast.providers.simulator.repository.send_log import IN_FLIGHT_WINDOW

# A send whose end is still not logged this long after WhatsApp answered it lost
# its caller (a worker killed, a database restart mid-call): the receipt pump ends
# it as accepted (``abandoned_sends``). Far longer than a live caller's end can be
# late, so it never ends a send its caller is still going to end.
ABANDONED_AFTER = timedelta(seconds=10)
# Send ids per IN list when marking receipts.
RECEIPT_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class AbandonedSend:
    """A send whose caller died before logging its end, long after WhatsApp answered it."""

    id: int
    session_id: str
    repeat: bool
    # When WhatsApp answered it (its start, for sends logged before that was recorded).
    answered_at: datetime


@dataclass(frozen=True, slots=True)
class DueReceipt:
    """A send whose "delivered" receipt is due."""

    id: int
    session_id: str
    provider_message_id: str
    deliver_at: datetime
    started_at: datetime


class ReceiptPumpRepository:
    """Sends the receipt pump ends or hands receipts out for."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def abandoned_sends(self, now: datetime, limit: int) -> list[AbandonedSend]:
        """Sends whose end was never logged though WhatsApp answered them more than
        ABANDONED_AFTER ago (or, logged before answers were recorded, started more
        than IN_FLIGHT_WINDOW ago), up to ``limit`` of them.

        On PostgreSQL the rows stay locked until the transaction ends and rows
        another worker holds are skipped, so two workers never end the same send.
        """
        query = (
            select(
                SimulatorSend.id,
                SimulatorSend.session_id,
                SimulatorSend.repeat,
                SimulatorSend.started_at,
                SimulatorSend.answer_due_at,
            )
            .where(
                SimulatorSend.finished_at.is_(None),
                or_(
                    and_(
                        SimulatorSend.answer_due_at.is_not(None),
                        SimulatorSend.answer_due_at < now - ABANDONED_AFTER,
                    ),
                    and_(
                        SimulatorSend.answer_due_at.is_(None),
                        SimulatorSend.started_at < now - IN_FLIGHT_WINDOW,
                    ),
                ),
            )
            # No ORDER BY: the few unfinished sends are found through the partial index
            # of sends in flight, never by walking the whole log in id order.
            .limit(limit)
        )
        if is_postgres(self.session):
            query = query.with_for_update(skip_locked=True)
        result = await self.session.execute(query)
        return [
            AbandonedSend(int(row_id), str(session_id), bool(repeat), answer_due_at or started_at)
            for row_id, session_id, repeat, started_at, answer_due_at in result.all()
        ]

    async def claim_due_receipts(self, now: datetime, limit: int) -> list[DueReceipt]:
        """Simulator sends whose receipt is due and not yet delivered, oldest first.

        On PostgreSQL the rows stay locked until the transaction ends and rows
        another worker holds are skipped, so no receipt is handed out twice.
        """
        query = (
            select(
                SimulatorSend.id,
                SimulatorSend.session_id,
                SimulatorSend.provider_message_id,
                SimulatorSend.deliver_at,
                SimulatorSend.started_at,
            )
            .where(
                SimulatorSend.deliver_at.is_not(None),
                SimulatorSend.deliver_at <= now,
                SimulatorSend.receipt_sent_at.is_(None),
            )
            .order_by(SimulatorSend.deliver_at, SimulatorSend.id)
            .limit(limit)
        )
        if is_postgres(self.session):
            query = query.with_for_update(skip_locked=True)
        result = await self.session.execute(query)
        due: list[DueReceipt] = []
        for row_id, session_id, provider_message_id, deliver_at, started_at in result:
            assert deliver_at is not None
            due.append(DueReceipt(row_id, session_id, provider_message_id, deliver_at, started_at))
        return due

    async def postpone_receipts(self, ids: Sequence[int], until: datetime) -> None:
        for start in range(0, len(ids), RECEIPT_CHUNK):
            await self.session.execute(
                update(SimulatorSend)
                .where(SimulatorSend.id.in_(ids[start : start + RECEIPT_CHUNK]))
                .values(deliver_at=until)
                .execution_options(synchronize_session=False)
            )

    async def mark_receipts_sent(self, ids: Sequence[int], at: datetime) -> None:
        for start in range(0, len(ids), RECEIPT_CHUNK):
            await self.session.execute(
                update(SimulatorSend)
                .where(SimulatorSend.id.in_(ids[start : start + RECEIPT_CHUNK]))
                .values(receipt_sent_at=at)
                .execution_options(synchronize_session=False)
            )
