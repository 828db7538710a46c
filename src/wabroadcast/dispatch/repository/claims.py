"""SQL of claims: due recipients committed as ``sending`` under a lease epoch, oldest
broadcast first, and put back when their send never started."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    String,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    Tenant,
    UTCDateTime,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    table_of,
)
from wabroadcast.dispatch.quiet import QUIET_COLUMNS, QuietZones, awake
from wabroadcast.dispatch.repository.daily_sends import DailySendsRepository
from wabroadcast.dispatch.repository.lifecycle import SENDABLE_BROADCASTS, LifecycleRepository
from wabroadcast.dispatch.repository.rows import Claimed, ClaimRequest, Moves, add_move
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus

R = WhatsAppBroadcastRecipient
B = WhatsAppBroadcast


def new_client_message_id(
    recipient_id: ColumnElement[int] | QueryableAttribute[int], attempt: ColumnElement[int]
) -> ColumnElement[str]:
    """The client message id of a recipient's attempt, ``wab-<recipient>-<attempt>``: the
    id a provider that accepts one ignores a repeat of."""
    return literal("wab-") + cast(recipient_id, String) + literal("-") + cast(attempt, String)


_NEW_CLIENT_ID_POSTGRES = new_client_message_id(
    literal_column("r.id"), literal_column("r.attempts + 1")
).compile(
    dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
    compile_kwargs={"literal_binds": True},
)
# Claims on PostgreSQL for any number of broadcasts in one statement: up to
# ``limits[i]`` due recipients of ``broadcast_ids[i]``, oldest first, skipping rows
# another worker is claiming, each committed as sending under its broadcast's
# epoch (``epochs``: a JSON object of broadcast id -> epoch). The ids are gathered
# first (an init plan) so the update itself is an index lookup.
CLAIM_POSTGRES = text(
    f"""
    WITH claimed AS (
    UPDATE whatsapp_broadcast_recipients AS r
    SET status = 'sending',
        attempts = r.attempts + 1,
        lease_owner = :holder,
        lease_epoch = CAST(CAST(:epochs AS jsonb) ->> CAST(r.broadcast_id AS text) AS bigint),
        client_message_id =
            COALESCE(r.client_message_id, {_NEW_CLIENT_ID_POSTGRES}),
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
    RETURNING r.id, r.broadcast_id, r.phone, r.attempts, r.client_message_id, r.next_attempt_at,
        r.rendered_message, r.time_zone
    )
    SELECT * FROM claimed ORDER BY id
    """  # noqa: S608 (only constants are formatted in)
).bindparams(bindparam("now", type_=UTCDateTime()))
# CLAIM_POSTGRES for a broadcast with recipients in quiet zones: none whose zone is
# one of ``quiet_zones`` is claimed, nor (``unzoned_quiet``) one without a zone.
_DUE_NOW = "AND q.next_attempt_at <= :now"
assert CLAIM_POSTGRES.text.count(_DUE_NOW) == 1
CLAIM_POSTGRES_AWAKE = text(
    CLAIM_POSTGRES.text.replace(
        _DUE_NOW,
        _DUE_NOW
        + """
              AND (q.time_zone IS NULL OR q.time_zone <> ALL(CAST(:quiet_zones AS text[])))
              AND (q.time_zone IS NOT NULL OR NOT CAST(:unzoned_quiet AS boolean))""",
    )
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


class ClaimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
        # A capped session claims at most what its day has left, under its counter's
        # lock (taken before the broadcasts', by every claim alike); a session whose
        # cap is reached claims nothing, and its slot lets go until a later pass.
        daily = DailySendsRepository(self.session)
        capped = await daily.capped_today(sorted(wanted), now, lock=True)
        for session_id, today in capped.items():
            left = today.left
            if left is not None and left < wanted[session_id].limit:
                wanted[session_id] = replace(wanted[session_id], limit=left)
        wanted = {s: request for s, request in wanted.items() if request.limit > 0}
        if not wanted:
            return {}
        # The broadcasts are locked first, in id order like every other writer of
        # them: a cancel (broadcast, then its queued recipients) and a claim
        # (recipients, then the broadcast's counters) would otherwise deadlock.
        rows = (
            await self.session.execute(
                select(B.id, B.session_id, B.status, B.message, B.template, *QUIET_COLUMNS)
                .join(Tenant, Tenant.id == B.tenant_id)
                .where(
                    one_of(self.session, B.session_id, sorted(wanted)),
                    B.status.in_(SENDABLE_BROADCASTS),
                )
                .order_by(B.id)
                .with_for_update(of=B)
            )
        ).all()
        # Broadcasts in their quiet hours are left out; recipient-zone ones keep theirs.
        rows, quiet, watched = awake(rows, now)
        candidates: dict[str, list[tuple[int, str, str, dict[str, Any] | None]]] = defaultdict(list)
        for broadcast_id, session_id, status, message, template in rows:
            candidates[str(session_id)].append(
                (int(broadcast_id), str(status), str(message), template)
            )
        claimed: dict[str, list[Claimed]] = defaultdict(list)
        claimed_from: list[tuple[int, str, BroadcastStatus]] = []
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
                [(b, wanted[s].epoch, room[s]) for s, (b, _, _, _) in tries.items()],
                holder,
                now,
                quiet,
            )
            for session_id, (broadcast_id, status, message, template) in tries.items():
                batch = found.get(broadcast_id)
                if not batch:
                    continue
                watch = watched.get(broadcast_id)
                claimed[session_id] += [
                    Claimed(
                        rid,
                        broadcast_id,
                        phone,
                        message if own is None else own,
                        attempts,
                        cmid,
                        due_at,
                        template,
                        None if watch is None else watch.for_recipient(zone),
                    )
                    for rid, _, phone, attempts, cmid, due_at, own, zone in batch
                ]
                counts[broadcast_id] = {
                    (RecipientStatus.QUEUED, RecipientStatus.SENDING): len(batch)
                }
                claimed_from.append((broadcast_id, session_id, BroadcastStatus(status)))
            rank += 1
        await daily.add(
            {(s, today.day): len(claimed[s]) for s, today in capped.items() if claimed.get(s)}
        )
        await shift_counts(self.session, counts, now, locked=True)
        await LifecycleRepository(self.session).mark_running(claimed_from, now)
        return {session_id: batch for session_id, batch in claimed.items() if batch}

    async def _claim_broadcasts(
        self,
        wanted: Sequence[tuple[int, int, int]],
        holder: str,
        now: datetime,
        quiet: Mapping[int, QuietZones] | None = None,
    ) -> dict[int, list[Any]]:
        """Due recipients of each (broadcast, epoch, limit) committed as ``sending``, by
        broadcast: rows of (id, broadcast id, phone, attempts, client message id, due
        at, own text of a personal message, time zone), in id order; none in ``quiet``
        zones."""
        if quiet and any(b in quiet for b, _, _ in wanted):
            return await self._claim_around_quiet_zones(wanted, holder, now, quiet)
        if is_postgres(self.session):
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

    async def _claim_around_quiet_zones(
        self,
        wanted: Sequence[tuple[int, int, int]],
        holder: str,
        now: datetime,
        quiet: Mapping[int, QuietZones],
    ) -> dict[int, list[Any]]:
        """``_claim_broadcasts`` when some broadcasts have recipients in quiet zones: the
        others in one statement as usual, each of those in its own (a rare path)."""
        plain = [w for w in wanted if w[0] not in quiet]
        found = await self._claim_broadcasts(plain, holder, now) if plain else defaultdict(list)
        for broadcast_id, epoch, limit in wanted:
            zones = quiet.get(broadcast_id)
            if zones is None:
                continue
            if is_postgres(self.session):
                result = await self.session.execute(
                    CLAIM_POSTGRES_AWAKE,
                    {
                        "broadcast_ids": [broadcast_id],
                        "epochs": json.dumps({str(broadcast_id): epoch}),
                        "limits": [limit],
                        "holder": holder,
                        "now": now,
                        "quiet_zones": list(zones.zones),
                        "unzoned_quiet": zones.unzoned,
                    },
                )
                rows = list(result.all())
            else:
                rows = await self._claim_broadcast_sqlite(
                    broadcast_id, epoch, limit, holder, now, zones
                )
            if rows:
                found[broadcast_id] = sorted(rows, key=itemgetter(0))
        return found

    async def _claim_broadcast_sqlite(
        self,
        broadcast_id: int,
        epoch: int,
        limit: int,
        holder: str,
        now: datetime,
        quiet: QuietZones | None = None,
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
        if quiet is not None:
            due = due.where(
                R.time_zone.is_not(None) if quiet.unzoned else literal(True),
                or_(R.time_zone.is_(None), R.time_zone.not_in(quiet.zones)),
            )
        result = await self.session.execute(
            update(R)
            .where(R.id.in_(due.scalar_subquery()))
            .values(
                status=RecipientStatus.SENDING.value,
                attempts=R.attempts + 1,
                lease_owner=holder,
                lease_epoch=epoch,
                client_message_id=func.coalesce(
                    R.client_message_id, new_client_message_id(R.id, R.attempts + 1)
                ),
                updated_at=now,
            )
            .returning(
                R.id,
                R.broadcast_id,
                R.phone,
                R.attempts,
                R.client_message_id,
                R.next_attempt_at,
                R.rendered_message,
                R.time_zone,
            )
            .execution_options(synchronize_session=False)
        )
        return list(result.all())

    async def set_lease_epochs(self, moved: Sequence[tuple[int, int]]) -> None:
        """Move claimed recipients to another lease epoch of the same holder: (id, epoch)."""
        if not moved:
            return
        if is_postgres(self.session):
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
                add_move(moves, item.broadcast_id, RecipientStatus.SENDING, RecipientStatus.QUEUED)
        await self._give_back_sends(moves, now)
        await shift_counts(self.session, moves, now)

    async def _give_back_sends(self, moves: Moves, now: datetime) -> None:
        """Unsent claims no longer count against their sessions' caps of today (before
        the broadcasts' counters: a claim locks a counter before any broadcast)."""
        if not moves:
            return
        daily = DailySendsRepository(self.session)
        of_broadcast = await daily.sessions_of_broadcasts(sorted(moves))
        capped = await daily.capped_today(set(of_broadcast.values()), now, lock=False)
        given_back: dict[tuple[str, date], int] = defaultdict(int)
        for broadcast_id, pairs in moves.items():
            today = capped.get(of_broadcast.get(broadcast_id, ""))
            if today is not None:
                given_back[(today.session_id, today.day)] -= sum(pairs.values())
        await daily.add(given_back)
