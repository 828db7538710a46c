"""SQL of the broadcast status changes the dispatcher makes: running, paused, finished.

Each goes through the transition table of ``domain.status``: the statuses a
row may move from are checked in Python against what was read (and locked),
and the UPDATE's own guard, a second line of defence, is derived from the same
table. Cancelling is the broadcast service's; here a cancel is only noticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.repository.broadcasts import BroadcastRepository
from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import UTCDateTime, WhatsAppBroadcast, table_of
from wabroadcast.domain.status import (
    SETTLED_BROADCAST_STATUSES,
    BroadcastStatus,
    ensure_transition,
    sources_of,
)
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger

log = get_logger("wabroadcast.dispatch")

B = WhatsAppBroadcast
# Broadcasts whose recipients a worker may claim.
SENDABLE_BROADCASTS = (BroadcastStatus.QUEUED.value, BroadcastStatus.RUNNING.value)
# Where a broadcast finishes from: where it was sending. Settled outcomes move among
# themselves only by late receipts (``broadcasts.repository.counts.resettle``), never here.
FINISHING_FROM = tuple(
    sorted(
        {source for settled in SETTLED_BROADCAST_STATUSES for source in sources_of(settled)}
        - SETTLED_BROADCAST_STATUSES
    )
)
# The same as an SQL condition, for statements that cannot take an IN list (executemany).
_FINISHING_SQL = f"status IN ({', '.join(repr(status.value) for status in FINISHING_FROM)})"
# Where the dispatcher moves a broadcast to running: not from a settled outcome, which
# only an operator's "retry failed" runs again (``broadcasts.control.retry_failed``).
RUNNING_FROM = tuple(sorted(sources_of(BroadcastStatus.RUNNING) - SETTLED_BROADCAST_STATUSES))
PAUSED_FROM = tuple(sorted(sources_of(BroadcastStatus.PAUSED)))
# Where a broadcast waits for its ``send_at`` before it is queued.
DUE_FROM = (BroadcastStatus.SCHEDULED.value,)
# Final statuses of any number of broadcasts in one statement (PostgreSQL): a JSON
# array of [id, status].
FINISH_POSTGRES = text(
    f"""
    UPDATE whatsapp_broadcasts AS b
    SET status = e ->> 1, finished_at = :now, updated_at = :now
    FROM json_array_elements(CAST(:finished AS json)) AS e
    WHERE b.id = CAST(e ->> 0 AS bigint)
      AND b.{_FINISHING_SQL}
    """  # noqa: S608 (only constants are formatted in)
).bindparams(bindparam("now", type_=UTCDateTime()))


@dataclass(frozen=True, slots=True)
class Finishable:
    """A broadcast with nothing left queued or sending, its status and final counts."""

    id: int
    status: BroadcastStatus
    sent: int  # sent, delivered or read
    failed: int
    cancelled: int
    skipped: int = 0


class LifecycleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def mark_running(
        self, claimed_from: Iterable[tuple[int, str, BroadcastStatus]], now: datetime
    ) -> None:
        """Broadcasts (id, session, status as locked) whose recipients were just claimed
        are running, those the table lets move there (queued ones: their first claim)."""
        sessions = {
            broadcast_id: session_id
            for broadcast_id, session_id, status in claimed_from
            if status in RUNNING_FROM
        }
        if not sessions:
            return
        result = await self.session.execute(
            update(B)
            .where(one_of(self.session, B.id, sorted(sessions)), B.status.in_(RUNNING_FROM))
            .values(status=BroadcastStatus.RUNNING.value, started_at=now, updated_at=now)
            .returning(B.id, B.queued_count, B.sending_count, B.sent_count, B.failed_count)
        )
        for broadcast_id, queued, sending, sent, failed in result.all():
            log.info(
                f"{BROADCAST_TAG} running",
                broadcast_id=int(broadcast_id),
                session_id=sessions[int(broadcast_id)],
                queued_count=int(queued) + int(sending),
                sent_count=int(sent),
                failed_count=int(failed),
            )

    async def queue_due(self, now: datetime) -> list[int]:
        """Scheduled broadcasts whose ``send_at`` has come are queued, in one statement;
        their ids. Claims then take their recipients like any queued broadcast's."""
        ensure_transition(BroadcastStatus.SCHEDULED, BroadcastStatus.QUEUED)
        result = await self.session.execute(
            update(B)
            .where(B.status.in_(DUE_FROM), B.send_at <= now)
            .values(status=BroadcastStatus.QUEUED.value, queued_at=now, updated_at=now)
            .returning(B.id, B.session_id, B.send_at)
        )
        queued = []
        for broadcast_id, session_id, send_at in result.all():
            queued.append(int(broadcast_id))
            log.info(
                f"{BROADCAST_TAG} scheduled time reached",
                broadcast_id=int(broadcast_id),
                session_id=session_id,
                send_at=send_at.isoformat() if send_at is not None else None,
            )
        await Outbox(self.session).broadcasts_changed(queued, now)
        return queued

    async def pause_session_broadcasts(
        self, session_id: str, reason: str, now: datetime
    ) -> list[int]:
        """Pause every broadcast of the session that may be paused; their ids."""
        # Locked in id order first, as claims and result writes lock them.
        rows = (
            await self.session.execute(
                select(B.id, B.status)
                .where(B.session_id == session_id, B.status.in_(PAUSED_FROM))
                .order_by(B.id)
                .with_for_update()
            )
        ).all()
        for _, status in rows:
            ensure_transition(BroadcastStatus(status), BroadcastStatus.PAUSED)
        paused = [int(broadcast_id) for broadcast_id, _ in rows]
        if paused:
            await self.session.execute(
                update(B)
                .where(B.id.in_(paused), B.status.in_(PAUSED_FROM))
                .values(status=BroadcastStatus.PAUSED.value, status_reason=reason, updated_at=now)
            )
            await Outbox(self.session).broadcasts_changed(paused, now)
        return paused

    async def cancelled_among(self, broadcast_ids: Iterable[int]) -> set[int]:
        """Which of these broadcasts were cancelled."""
        ids = list(broadcast_ids)
        if not ids:
            return set()
        result = await self.session.execute(
            select(B.id).where(
                one_of(self.session, B.id, ids), B.status == BroadcastStatus.CANCELLED.value
            )
        )
        return {int(broadcast_id) for broadcast_id in result.scalars()}

    async def sweep_cancelled(self, broadcast_ids: Iterable[int], now: datetime) -> None:
        """Recipients re-queued after their broadcast was cancelled are cancelled too."""
        repo = BroadcastRepository(self.session)
        for broadcast_id in sorted(await self.cancelled_among(broadcast_ids)):
            await repo.cancel_queued(broadcast_id, now)

    async def finishable(self, broadcast_ids: Iterable[int]) -> list[Finishable]:
        """Broadcasts still sending (running or paused) with nothing left queued or
        sending, locked (in id order) until this transaction ends, so ``finish_many``
        applies to each of them."""
        ids = list(broadcast_ids)
        if not ids:
            return []
        result = await self.session.execute(
            select(
                B.id,
                B.status,
                B.sent_count + B.delivered_count + B.read_count,
                B.failed_count,
                B.cancelled_count,
                B.skipped_count,
            )
            .where(
                one_of(self.session, B.id, ids),
                B.status.in_(FINISHING_FROM),
                B.queued_count == 0,
                B.sending_count == 0,
            )
            .order_by(B.id)
            .with_for_update()
        )
        return [
            Finishable(
                int(broadcast_id), BroadcastStatus(status), int(sent), int(failed), int(c), int(k)
            )
            for broadcast_id, status, sent, failed, c, k in result.all()
        ]

    async def finish_many(
        self, finished: Sequence[tuple[Finishable, BroadcastStatus]], now: datetime
    ) -> None:
        """Set the final status of broadcasts ``finishable`` returned (and locked)."""
        if not finished:
            return
        for broadcast, status in finished:
            ensure_transition(broadcast.status, status)
        if is_postgres(self.session):
            await self.session.execute(
                FINISH_POSTGRES,
                {
                    "finished": json.dumps(
                        [[broadcast.id, status.value] for broadcast, status in finished]
                    ),
                    "now": now,
                },
            )
        else:
            table = table_of(B)
            await self.session.execute(
                update(table)
                .where(table.c.id == bindparam("bid"), text(_FINISHING_SQL))
                .values(status=bindparam("final"), finished_at=now, updated_at=now),
                [{"bid": broadcast.id, "final": status.value} for broadcast, status in finished],
            )
        await Outbox(self.session).broadcasts_changed([b.id for b, _ in finished], now)
