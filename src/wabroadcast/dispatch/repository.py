"""All SQL of the dispatcher: slot leases, pacing, claims, fenced results, recovery."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    String,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.repository import BroadcastRepository, shift_counts
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    SessionLease,
    UTCDateTime,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    WhatsAppSession,
    table_of,
)
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger

log = get_logger("wabroadcast.dispatch")

R = WhatsAppBroadcastRecipient
B = WhatsAppBroadcast
# Sent results on PostgreSQL, any number of any leases in one statement, counted
# per broadcast (for the broadcasts' counters). The results go as one JSON array of
# [id, provider id, lease epoch], parsed once: the text stays the same whatever
# the batch size, and no per-value formatting happens in Python. The array's
# estimated 100 rows make each one an index lookup, on a table of any size.
RECORD_SENT_POSTGRES = text(
    """
    WITH sent AS (
    UPDATE whatsapp_broadcast_recipients AS r
    SET status = 'sent',
        provider_message_id = e ->> 1,
        sent_at = :now,
        error_code = NULL,
        error_message = NULL,
        updated_at = :now
    FROM json_array_elements(CAST(:sent AS json)) AS e
    WHERE r.id = CAST(e ->> 0 AS bigint)
      AND r.lease_epoch = CAST(e ->> 2 AS bigint)
      AND r.status = 'sending'
    RETURNING r.broadcast_id
    )
    SELECT broadcast_id, count(*) FROM sent GROUP BY broadcast_id
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
# Claims on PostgreSQL for any number of broadcasts in one statement: up to
# ``limits[i]`` due recipients of ``broadcast_ids[i]``, oldest first, skipping rows
# another worker is claiming, each committed as sending under its broadcast's
# epoch (``epochs``: a JSON object of broadcast id -> epoch). The ids are gathered
# first (an init plan) so the update itself is an index lookup.
CLAIM_POSTGRES = text(
    """
    WITH claimed AS (
    UPDATE whatsapp_broadcast_recipients AS r
    SET status = 'sending',
        attempts = r.attempts + 1,
        lease_owner = :holder,
        lease_epoch = CAST(CAST(:epochs AS jsonb) ->> CAST(r.broadcast_id AS text) AS bigint),
        client_message_id =
            COALESCE(r.client_message_id, 'wab-' || r.id || '-' || (r.attempts + 1)),
        updated_at = :now
    WHERE r.id = ANY(ARRAY(
        SELECT due.id
        FROM unnest(CAST(:broadcast_ids AS bigint[]), CAST(:limits AS integer[]))
            AS wanted(broadcast_id, claim_limit)
        CROSS JOIN LATERAL (
            SELECT q.id
            FROM whatsapp_broadcast_recipients AS q
            WHERE q.broadcast_id = wanted.broadcast_id
              AND q.status = 'queued'
              AND q.next_attempt_at <= :now
            ORDER BY q.id
            LIMIT wanted.claim_limit
            FOR UPDATE SKIP LOCKED
        ) AS due
    ))
    RETURNING r.id, r.broadcast_id, r.phone, r.attempts, r.client_message_id, r.next_attempt_at
    )
    SELECT * FROM claimed ORDER BY id
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
# Claimed recipients moved to another lease epoch (PostgreSQL): a JSON array of [id, epoch].
SET_EPOCHS_POSTGRES = text(
    """
    UPDATE whatsapp_broadcast_recipients AS r
    SET lease_epoch = CAST(e ->> 1 AS bigint)
    FROM json_array_elements(CAST(:moved AS json)) AS e
    WHERE r.id = CAST(e ->> 0 AS bigint)
    """
)
# Final statuses of any number of broadcasts in one statement (PostgreSQL): a JSON
# array of [id, status].
FINISH_POSTGRES = text(
    """
    UPDATE whatsapp_broadcasts AS b
    SET status = e ->> 1, finished_at = :now, updated_at = :now
    FROM json_array_elements(CAST(:finished AS json)) AS e
    WHERE b.id = CAST(e ->> 0 AS bigint)
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
# Ids per IN list on SQLite (it allows 32,766 parameters per statement).
SQLITE_CHUNK = 500
SENDABLE_BROADCASTS = (BroadcastStatus.QUEUED.value, BroadcastStatus.RUNNING.value)

Moves = dict[int, dict[tuple[RecipientStatus, RecipientStatus], int]]


class Claimed(NamedTuple):
    """A recipient committed as ``sending`` under a lease epoch, ready for its provider call.

    A named tuple, not a frozen dataclass: a worker makes tens of thousands of these
    (and of ``Result``) a second, and a frozen dataclass takes four times as long to
    build (each field is set through ``object.__setattr__``).
    """

    recipient_id: int
    broadcast_id: int
    phone: str
    message: str
    attempts: int
    client_message_id: str
    # When the recipient became due (queued, or its retry time): the queue wait starts here.
    due_at: datetime | None = None
    # The broadcast's provider template, if it has one.
    template: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Finishable:
    """A broadcast with nothing left queued or sending, and its final counts."""

    id: int
    sent: int  # sent, delivered or read
    failed: int
    cancelled: int


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim up to ``limit`` recipients of ``session_id`` under lease ``epoch``."""

    session_id: str
    epoch: int
    limit: int


class Result(NamedTuple):
    """What to record for one claimed recipient; written only if its epoch still matches."""

    recipient_id: int
    broadcast_id: int
    epoch: int
    status: RecipientStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None
    refund_attempt: bool = False
    keep_client_message_id: bool = False


def _add_move(
    moves: Moves, broadcast_id: int, old: RecipientStatus, new: RecipientStatus, count: int = 1
) -> None:
    pairs = moves.setdefault(broadcast_id, defaultdict(int))
    pairs[(old, new)] += count


class DispatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _is_postgres(self) -> bool:
        return is_postgres(self.session)

    # --- discovery ------------------------------------------------------------

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
        statement = (pg_insert if self._is_postgres else sqlite_insert)(SessionLease)
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

    # --- claims -----------------------------------------------------------------

    async def claim(
        self, session_id: str, *, holder: str, epoch: int, now: datetime, limit: int
    ) -> list[Claimed]:
        """Commit up to ``limit`` due recipients of the session as sending, oldest first."""
        claimed = await self.claim_many([ClaimRequest(session_id, epoch, limit)], holder, now)
        return claimed.get(session_id, [])

    async def claim_many(
        self, requests: Sequence[ClaimRequest], holder: str, now: datetime
    ) -> dict[str, list[Claimed]]:
        """``claim`` for many sessions at once (one lease each): their batches by session.

        Each session's sendable broadcasts are taken oldest first, the next one
        only filling what the older left of the limit, so a batch shorter than
        its limit means the session had nothing more due. One statement claims
        for every session still looking, so a worker that just took a thousand
        sessions starts them all together.
        """
        if len({request.session_id for request in requests}) != len(requests):
            raise ValueError("claim_many takes at most one request per session")
        wanted = {request.session_id: request for request in requests if request.limit > 0}
        if not wanted:
            return {}
        # The broadcasts are locked first, in id order like every other writer of
        # them: a cancel (broadcast, then its queued recipients) and a claim
        # (recipients, then the broadcast's counters) would otherwise deadlock.
        rows = (
            await self.session.execute(
                select(B.id, B.session_id, B.status, B.message, B.template)
                .where(
                    one_of(self.session, B.session_id, sorted(wanted)),
                    B.status.in_(SENDABLE_BROADCASTS),
                )
                .order_by(B.id)
                .with_for_update()
            )
        ).all()
        candidates: dict[str, list[tuple[int, str, str, dict[str, Any] | None]]] = defaultdict(list)
        for broadcast_id, session_id, status, message, template in rows:
            candidates[str(session_id)].append(
                (int(broadcast_id), str(status), str(message), template)
            )
        claimed: dict[str, list[Claimed]] = defaultdict(list)
        started: list[tuple[int, str]] = []
        counts: Moves = {}
        rank = 0
        while True:
            # The rank-th oldest broadcast of every session whose batch is not full yet.
            room = {s: wanted[s].limit - len(claimed[s]) for s in wanted}
            tries = {
                session_id: candidates[session_id][rank]
                for session_id in wanted
                if room[session_id] > 0 and rank < len(candidates[session_id])
            }
            if not tries:
                break
            found = await self._claim_broadcasts(
                [(b, wanted[s].epoch, room[s]) for s, (b, _, _, _) in tries.items()], holder, now
            )
            for session_id, (broadcast_id, status, message, template) in tries.items():
                batch = found.get(broadcast_id)
                if not batch:
                    continue
                claimed[session_id] += [
                    Claimed(rid, broadcast_id, phone, message, attempts, cmid, due_at, template)
                    for rid, _, phone, attempts, cmid, due_at in batch
                ]
                counts[broadcast_id] = {
                    (RecipientStatus.QUEUED, RecipientStatus.SENDING): len(batch)
                }
                if status == BroadcastStatus.QUEUED.value:
                    started.append((broadcast_id, session_id))
            rank += 1
        await shift_counts(self.session, counts, now, locked=True)
        await self._mark_running(started, now)
        return {session_id: batch for session_id, batch in claimed.items() if batch}

    async def _claim_broadcasts(
        self, wanted: Sequence[tuple[int, int, int]], holder: str, now: datetime
    ) -> dict[int, list[Any]]:
        """Due recipients of each (broadcast, epoch, limit) committed as ``sending``, by
        broadcast: rows of (id, broadcast id, phone, attempts, client message id, due
        at), in id order."""
        if self._is_postgres:
            result = await self.session.execute(
                CLAIM_POSTGRES,
                {
                    "broadcast_ids": [b for b, _, _ in wanted],
                    "epochs": json.dumps({str(b): e for b, e, _ in wanted}),
                    "limits": [n for _, _, n in wanted],
                    "holder": holder,
                    "now": now,
                },
            )
            rows = result.all()  # in id order already
        else:
            rows = []
            for broadcast_id, epoch, limit in wanted:
                rows += await self._claim_broadcast_sqlite(broadcast_id, epoch, limit, holder, now)
            rows.sort(key=itemgetter(0))
        found: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            found[row[1]].append(row)
        return found

    async def _claim_broadcast_sqlite(
        self, broadcast_id: int, epoch: int, limit: int, holder: str, now: datetime
    ) -> list[Any]:
        # SQLite writes one transaction at a time (BEGIN IMMEDIATE): no row locks needed.
        due = (
            select(R.id)
            .where(
                R.broadcast_id == broadcast_id,
                R.status == RecipientStatus.QUEUED.value,
                R.next_attempt_at <= now,
            )
            .order_by(R.id)
            .limit(limit)
        )
        new_client_id = (
            literal("wab-") + cast(R.id, String) + literal("-") + cast(R.attempts + 1, String)
        )
        result = await self.session.execute(
            update(R)
            .where(R.id.in_(due.scalar_subquery()))
            .values(
                status=RecipientStatus.SENDING.value,
                attempts=R.attempts + 1,
                lease_owner=holder,
                lease_epoch=epoch,
                client_message_id=func.coalesce(R.client_message_id, new_client_id),
                updated_at=now,
            )
            .returning(
                R.id, R.broadcast_id, R.phone, R.attempts, R.client_message_id, R.next_attempt_at
            )
            .execution_options(synchronize_session=False)
        )
        return list(result.all())

    async def set_lease_epochs(self, moved: Sequence[tuple[int, int]]) -> None:
        """Move claimed recipients to another lease epoch of the same holder: (id, epoch)."""
        if not moved:
            return
        if self._is_postgres:
            await self.session.execute(
                SET_EPOCHS_POSTGRES, {"moved": json.dumps([list(pair) for pair in moved])}
            )
            return
        table = table_of(R)
        await self.session.execute(
            update(table)
            .where(table.c.id == bindparam("m_id"))
            .values(lease_epoch=bindparam("m_epoch")),
            [{"m_id": recipient_id, "m_epoch": epoch} for recipient_id, epoch in moved],
        )

    async def _mark_running(self, broadcasts: Sequence[tuple[int, str]], now: datetime) -> None:
        """Queued broadcasts whose first recipients were just claimed are now running."""
        if not broadcasts:
            return
        sessions = dict(broadcasts)
        result = await self.session.execute(
            update(B)
            .where(
                one_of(self.session, B.id, sorted(sessions)),
                B.status == BroadcastStatus.QUEUED.value,
            )
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

    async def unclaim(self, claimed: Sequence[Claimed], epoch: int, now: datetime) -> None:
        """Put claimed-but-unsent recipients back as they were (stopping, or a lost lease)."""
        moves: Moves = {}
        for item in claimed:
            result = await self.session.execute(
                update(R)
                .where(
                    R.id == item.recipient_id,
                    R.lease_epoch == epoch,
                    R.status == RecipientStatus.SENDING.value,
                )
                .values(
                    status=RecipientStatus.QUEUED.value,
                    attempts=R.attempts - 1,
                    updated_at=now,
                )
                .returning(R.id)
                .execution_options(synchronize_session=False)
            )
            if result.first() is not None:
                _add_move(moves, item.broadcast_id, RecipientStatus.SENDING, RecipientStatus.QUEUED)
        await shift_counts(self.session, moves, now)

    # --- results ------------------------------------------------------------------

    async def record(
        self, results: Iterable[Result], now: datetime, *, fenced: bool = True
    ) -> set[int]:
        """Write each result where the recipient is still ``sending`` under its epoch.

        A result whose epoch no longer matches belongs to a worker that lost its
        lease; it is dropped, never written over the new holder's state. Only
        recovery passes ``fenced=False``: it resolves orphans it has just locked,
        whose lease is gone. Returns the broadcasts touched.
        """
        moves: Moves = {}
        results = list(results)
        if fenced:
            sent = [item for item in results if item.status is RecipientStatus.SENT]
            results = [item for item in results if item.status is not RecipientStatus.SENT]
            await self._record_sent(sent, now, moves)
        for item in results:
            values: dict[str, object] = {"status": item.status.value, "updated_at": now}
            if item.status is RecipientStatus.SENT:
                values.update(
                    provider_message_id=item.provider_message_id,
                    sent_at=now,
                    error_code=None,
                    error_message=None,
                )
            elif item.status is RecipientStatus.FAILED:
                values.update(
                    error_code=item.error_code, error_message=item.error_message, failed_at=now
                )
            else:
                values.update(
                    error_code=item.error_code,
                    error_message=item.error_message,
                    next_attempt_at=item.next_attempt_at or now,
                )
                if not item.keep_client_message_id:
                    values["client_message_id"] = None
                if item.refund_attempt:
                    values["attempts"] = R.attempts - 1
            fence = R.lease_epoch == item.epoch if fenced else R.id == item.recipient_id
            result = await self.session.execute(
                update(R)
                .where(R.id == item.recipient_id, fence, R.status == RecipientStatus.SENDING.value)
                .values(values)
                .returning(R.id)
                .execution_options(synchronize_session=False)
            )
            if result.first() is not None:
                _add_move(moves, item.broadcast_id, RecipientStatus.SENDING, item.status)
        await shift_counts(self.session, moves, now)
        return set(moves)

    async def _record_sent(self, sent: Sequence[Result], now: datetime, moves: Moves) -> None:
        """The common result, sent, in one statement (PostgreSQL) or one per lease (SQLite)."""
        if not sent:
            return
        if self._is_postgres:
            rows = await self.session.execute(
                RECORD_SENT_POSTGRES,
                {
                    "sent": json.dumps(
                        [[item.recipient_id, item.provider_message_id, item.epoch] for item in sent]
                    ),
                    "now": now,
                },
            )
            counts = [(int(broadcast_id), int(count)) for broadcast_id, count in rows.all()]
        else:
            by_epoch: dict[int, dict[int, str | None]] = defaultdict(dict)
            for item in sent:
                by_epoch[item.epoch][item.recipient_id] = item.provider_message_id
            counts = []
            for epoch, provider_ids in by_epoch.items():
                counts += [
                    (broadcast_id, 1)
                    for broadcast_id in await self._record_sent_sqlite(epoch, provider_ids, now)
                ]
        for broadcast_id, count in counts:
            _add_move(moves, broadcast_id, RecipientStatus.SENDING, RecipientStatus.SENT, count)

    async def _record_sent_sqlite(
        self, epoch: int, provider_ids: dict[int, str | None], now: datetime
    ) -> list[int]:
        # SQLite writes one transaction at a time (BEGIN IMMEDIATE), so the rows
        # read here are still under this epoch when the update below runs.
        fenced: list[tuple[int, int]] = []
        ids = list(provider_ids)
        for offset in range(0, len(ids), SQLITE_CHUNK):
            rows = await self.session.execute(
                select(R.id, R.broadcast_id).where(
                    R.id.in_(ids[offset : offset + SQLITE_CHUNK]),
                    R.lease_epoch == epoch,
                    R.status == RecipientStatus.SENDING.value,
                )
            )
            fenced += [(int(rid), int(bid)) for rid, bid in rows.all()]
        if fenced:
            await self.session.execute(
                update(table_of(R))
                .where(table_of(R).c.id == bindparam("rid"))
                .values(
                    status=RecipientStatus.SENT.value,
                    provider_message_id=bindparam("pmid"),
                    sent_at=now,
                    error_code=None,
                    error_message=None,
                    updated_at=now,
                ),
                [{"rid": rid, "pmid": provider_ids[rid]} for rid, _ in fenced],
            )
        return [broadcast_id for _, broadcast_id in fenced]

    # --- recovery -------------------------------------------------------------------

    async def orphaned_sending(self, now: datetime, limit: int) -> list[tuple[int, int, str, int]]:
        """Recipients ``sending`` under a lease that is gone: (id, broadcast, session, attempts)."""
        live_lease = exists().where(
            SessionLease.session_id == R.session_id,
            SessionLease.epoch == R.lease_epoch,
            SessionLease.holder.is_not(None),
            SessionLease.expires_at >= now,
        )
        active = select(B.id).where(
            B.status.in_(
                (
                    BroadcastStatus.RUNNING.value,
                    BroadcastStatus.PAUSED.value,
                    BroadcastStatus.CANCELLED.value,
                )
            )
        )
        rows = (
            await self.session.execute(
                select(R.id, R.broadcast_id, R.session_id, R.attempts)
                .where(
                    R.broadcast_id.in_(active.scalar_subquery()),
                    R.status == RecipientStatus.SENDING.value,
                    ~live_lease,
                )
                .order_by(R.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        return [(int(a), int(b), str(c), int(d)) for a, b, c, d in rows]

    # --- broadcast lifecycle ------------------------------------------------------------

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
        """Running or paused broadcasts with nothing left queued or sending, locked (in id
        order) until this transaction ends, so ``finish_many`` applies to each of them."""
        ids = list(broadcast_ids)
        if not ids:
            return []
        result = await self.session.execute(
            select(
                B.id,
                B.sent_count + B.delivered_count + B.read_count,
                B.failed_count,
                B.cancelled_count,
            )
            .where(
                one_of(self.session, B.id, ids),
                B.status.in_((BroadcastStatus.RUNNING.value, BroadcastStatus.PAUSED.value)),
                B.queued_count == 0,
                B.sending_count == 0,
            )
            .order_by(B.id)
            .with_for_update()
        )
        return [
            Finishable(int(broadcast_id), int(sent), int(failed), int(cancelled))
            for broadcast_id, sent, failed, cancelled in result.all()
        ]

    async def finish_many(
        self, finished: Sequence[tuple[int, BroadcastStatus]], now: datetime
    ) -> None:
        """Set the final status of broadcasts ``finishable`` returned (and locked)."""
        if not finished:
            return
        if self._is_postgres:
            await self.session.execute(
                FINISH_POSTGRES,
                {
                    "finished": json.dumps(
                        [[broadcast_id, status.value] for broadcast_id, status in finished]
                    ),
                    "now": now,
                },
            )
            return
        table = table_of(B)
        await self.session.execute(
            update(table)
            .where(table.c.id == bindparam("bid"))
            .values(status=bindparam("final"), finished_at=now, updated_at=now),
            [{"bid": broadcast_id, "final": status.value} for broadcast_id, status in finished],
        )

    async def pause_session_broadcasts(
        self, session_id: str, reason: str, now: datetime
    ) -> list[int]:
        # Locked in id order first, as claims and result writes lock them.
        ids = (
            await self.session.execute(
                select(B.id)
                .where(B.session_id == session_id, B.status.in_(SENDABLE_BROADCASTS))
                .order_by(B.id)
                .with_for_update()
            )
        ).scalars()
        paused = [int(broadcast_id) for broadcast_id in ids]
        if paused:
            await self.session.execute(
                update(B)
                .where(B.id.in_(paused))
                .values(status=BroadcastStatus.PAUSED.value, status_reason=reason, updated_at=now)
            )
        return paused
