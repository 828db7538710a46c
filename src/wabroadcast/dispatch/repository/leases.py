"""SQL of send-slot leases and pacing: which sessions have work, who holds which slot
(fenced by epoch), and each session's GCRA arrival time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import SessionLease, WhatsAppBroadcast, WhatsAppSession, table_of
from wabroadcast.dispatch.repository.lifecycle import SENDABLE_BROADCASTS

B = WhatsAppBroadcast


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sessions_with_work(self) -> dict[str, int]:
        """Sessions that have a broadcast that may still need sending: their slot counts."""
        result = await self.session.execute(
            select(B.session_id, WhatsAppSession.max_concurrency)
            .join(WhatsAppSession, WhatsAppSession.id == B.session_id)
            .where(B.status.in_(SENDABLE_BROADCASTS))
            .distinct()
        )
        return {str(session_id): int(slots) for session_id, slots in result.all()}

    # --- slot leases --------------------------------------------------------------

    async def get_sessions(self, session_ids: Sequence[str]) -> list[WhatsAppSession]:
        if not session_ids:
            return []
        result = await self.session.execute(
            select(WhatsAppSession).where(one_of(self.session, WhatsAppSession.id, session_ids))
        )
        return list(result.scalars())

    async def ensure_slots(self, session_id: str, tenant_id: int, count: int) -> None:
        await self.ensure_slots_many([(session_id, tenant_id, count)])

    async def ensure_slots_many(self, sessions: Sequence[tuple[str, int, int]]) -> None:
        """Lease rows for every slot of each (session, tenant, max_concurrency)."""
        rows = [
            {"session_id": session_id, "slot": slot, "tenant_id": tenant_id, "epoch": 0}
            for session_id, tenant_id, count in sessions
            for slot in range(count)
        ]
        if not rows:
            return
        statement = (pg_insert if is_postgres(self.session) else sqlite_insert)(SessionLease)
        await self.session.execute(
            statement.values(rows).on_conflict_do_nothing(index_elements=["session_id", "slot"])
        )

    async def acquire_slot(
        self, session_id: str, slot: int, holder: str, now: datetime, ttl: timedelta
    ) -> int | None:
        """Take the slot if free or expired; the new epoch, or None if someone holds it."""
        taken = await self.acquire_slots([(session_id, slot)], holder, now, ttl)
        return taken.get((session_id, slot))

    async def acquire_slots(
        self, slots: Sequence[tuple[str, int]], holder: str, now: datetime, ttl: timedelta
    ) -> dict[tuple[str, int], int]:
        """Take every slot of ``slots`` that is free or expired; each one's new epoch.

        A few statements for any number of slots (a worker may serve thousands of
        sessions). Slots another worker holds, or is taking right now, are skipped.
        Each session's epoch sequence moves past every epoch handed out, so an
        epoch names one lease of one session; unused numbers are simply skipped.
        """
        if not slots:
            return {}
        free = (
            await self.session.execute(
                select(SessionLease.session_id, SessionLease.slot)
                .where(
                    tuple_(SessionLease.session_id, SessionLease.slot).in_(list(slots)),
                    or_(SessionLease.holder.is_(None), SessionLease.expires_at < now),
                )
                .order_by(SessionLease.session_id, SessionLease.slot)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not free:
            return {}
        per_session: dict[str, list[int]] = defaultdict(list)
        for session_id, slot in free:
            per_session[str(session_id)].append(int(slot))
        step = max(len(taken) for taken in per_session.values())
        session_ids = sorted(per_session)
        # Locked in id order first, so two workers never wait on each other in a cycle.
        await self.session.execute(
            select(WhatsAppSession.id)
            .where(one_of(self.session, WhatsAppSession.id, session_ids))
            .order_by(WhatsAppSession.id)
            .with_for_update()
        )
        tops = dict(
            (
                await self.session.execute(
                    update(WhatsAppSession)
                    .where(one_of(self.session, WhatsAppSession.id, session_ids))
                    .values(lease_epoch_seq=WhatsAppSession.lease_epoch_seq + step)
                    .returning(WhatsAppSession.id, WhatsAppSession.lease_epoch_seq)
                )
            ).all()
        )
        epochs = {
            (session_id, slot): int(tops[session_id]) - step + 1 + n
            for session_id, taken in per_session.items()
            for n, slot in enumerate(taken)
        }
        leases = table_of(SessionLease)
        await self.session.execute(
            update(leases)
            .where(leases.c.session_id == bindparam("sid"), leases.c.slot == bindparam("n"))
            .values(holder=holder, epoch=bindparam("new_epoch"), expires_at=now + ttl),
            [{"sid": sid, "n": slot, "new_epoch": epoch} for (sid, slot), epoch in epochs.items()],
        )
        return epochs

    async def renew_slots(
        self,
        slots: Sequence[tuple[str, int, int]],
        holder: str,
        now: datetime,
        ttl: timedelta,
    ) -> set[tuple[str, int, int]]:
        """Extend our leases (session, slot, epoch); the ones still ours, in one statement.

        A lease that expired, was taken over or was released is not renewed.
        """
        if not slots:
            return set()
        result = await self.session.execute(
            update(SessionLease)
            .where(
                tuple_(SessionLease.session_id, SessionLease.slot, SessionLease.epoch).in_(slots),
                SessionLease.holder == holder,
                SessionLease.expires_at >= now,
            )
            .values(expires_at=now + ttl)
            .returning(SessionLease.session_id, SessionLease.slot, SessionLease.epoch)
        )
        return {(str(s), int(n), int(e)) for s, n, e in result.all()}

    async def release_slot(self, session_id: str, slot: int, epoch: int) -> None:
        await self.release_slots([(session_id, slot, epoch)])

    async def release_slots(self, slots: Sequence[tuple[str, int, int]]) -> None:
        """Give up our leases (session, slot, epoch); one that moved on is left alone."""
        if not slots:
            return
        await self.session.execute(
            update(SessionLease)
            .where(
                tuple_(SessionLease.session_id, SessionLease.slot, SessionLease.epoch).in_(
                    sorted(slots)
                )
            )
            .values(holder=None, expires_at=None)
        )

    # --- pacing ---------------------------------------------------------------

    async def lock_pace(self, session_id: str) -> datetime | None:
        result = await self.session.execute(
            select(WhatsAppSession.next_send_at)
            .where(WhatsAppSession.id == session_id)
            .with_for_update()
        )
        value: datetime | None = result.scalar_one()
        return value

    async def set_pace(self, session_id: str, next_send_at: datetime) -> None:
        await self.session.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == session_id)
            .values(next_send_at=next_send_at)
        )
