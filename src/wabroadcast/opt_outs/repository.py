"""The SQL of opt-outs: the tenant's list, and the queued recipients an opt-out skips."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    OptOut,
    Tenant,
    UTCDateTime,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
)
from wabroadcast.domain.status import (
    ACTIVE_BROADCAST_STATUSES,
    BroadcastStatus,
    RecipientStatus,
    ensure_transition,
)

B = WhatsAppBroadcast
R = WhatsAppBroadcastRecipient

OPTED_OUT = "opted_out"
OPTED_OUT_MESSAGE = "not sent: the number opted out"
# Where a broadcast whose every remaining recipient opted out starts from, to finish.
_STARTABLE = (BroadcastStatus.SCHEDULED.value, BroadcastStatus.QUEUED.value)

# The numbers travel as one JSON array, so a list of 100,000 is one short statement
# (and one plan) on either backend; lookups use the recipients' unique
# (broadcast_id, phone) index. ``WHERE true`` lets SQLite read ``ON CONFLICT``.
_ADD_POSTGRES = text(
    """
    INSERT INTO whatsapp_opt_outs (tenant_id, phone, source, reason, created_at)
    SELECT :tenant_id, p.phone, :source, :reason, :now
    FROM json_array_elements_text(CAST(:phones AS json)) AS p(phone)
    ON CONFLICT (tenant_id, phone) DO NOTHING
    RETURNING phone
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
_ADD_SQLITE = text(
    """
    INSERT INTO whatsapp_opt_outs (tenant_id, phone, source, reason, created_at)
    SELECT :tenant_id, p.value, :source, :reason, :now FROM json_each(:phones) AS p WHERE true
    ON CONFLICT (tenant_id, phone) DO NOTHING
    RETURNING phone
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
_QUEUED = RecipientStatus.QUEUED.value
_SKIPPED = RecipientStatus.SKIPPED.value
_IDS_POSTGRES = "ANY(ARRAY(SELECT CAST(json_array_elements_text(CAST(:ids AS json)) AS bigint)))"
_CANDIDATES_POSTGRES = text(
    f"""
    SELECT DISTINCT r.broadcast_id
    FROM whatsapp_broadcast_recipients AS r
    JOIN json_array_elements_text(CAST(:phones AS json)) AS p(phone) ON r.phone = p.phone
    WHERE r.broadcast_id = {_IDS_POSTGRES} AND r.status = '{_QUEUED}'
    """  # noqa: S608 (only constants are formatted in)
)
_CANDIDATES_SQLITE = text(
    f"""
    SELECT DISTINCT broadcast_id FROM whatsapp_broadcast_recipients
    WHERE broadcast_id IN (SELECT value FROM json_each(:ids))
      AND phone IN (SELECT value FROM json_each(:phones))
      AND status = '{_QUEUED}'
    """  # noqa: S608 (only constants are formatted in)
)
_SKIP_POSTGRES = text(
    f"""
    UPDATE whatsapp_broadcast_recipients AS r
    SET status = '{_SKIPPED}', error_code = :code, error_message = :message, updated_at = :now
    FROM json_array_elements_text(CAST(:phones AS json)) AS p(phone)
    WHERE r.phone = p.phone AND r.broadcast_id = {_IDS_POSTGRES} AND r.status = '{_QUEUED}'
    RETURNING r.broadcast_id
    """  # noqa: S608 (only constants are formatted in)
).bindparams(bindparam("now", type_=UTCDateTime()))
_SKIP_SQLITE = text(
    f"""
    UPDATE whatsapp_broadcast_recipients
    SET status = '{_SKIPPED}', error_code = :code, error_message = :message, updated_at = :now
    WHERE broadcast_id IN (SELECT value FROM json_each(:ids))
      AND phone IN (SELECT value FROM json_each(:phones))
      AND status = '{_QUEUED}'
    RETURNING broadcast_id
    """  # noqa: S608 (only constants are formatted in)
).bindparams(bindparam("now", type_=UTCDateTime()))


# The one reply owed to a number that opted out by a stop word: ``due``, then ``sending``
# (taken: never again), then ``sent`` or ``failed``.
REPLY_DUE = "due"
REPLY_SENDING = "sending"
REPLY_SENT = "sent"
REPLY_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DueReply:
    opt_out_id: int
    tenant_id: int
    phone: str
    session_id: str | None
    # The tenant's reply as it is now (None: it was cleared since).
    text: str | None


class OptOutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_tenant(self, tenant_id: int) -> None:
        """Wait for the tenant's broadcasts being created, and hold back new ones, until
        this transaction ends (PostgreSQL; SQLite runs one writer at a time).

        A creation inserts its broadcast row first, which takes a key-share lock on
        the tenant row (the foreign key) until it commits, and only then reads the
        opt-outs. So an opt-out either sees that broadcast's recipients, or the
        broadcast sees the opt-out: neither misses the other.
        """
        if is_postgres(self.session):
            await self.session.execute(
                select(Tenant.id).where(Tenant.id == tenant_id).with_for_update()
            )

    async def phones(self, tenant_id: int) -> frozenset[str]:
        """Every number the tenant must not message (one query)."""
        result = await self.session.execute(
            select(OptOut.phone).where(OptOut.tenant_id == tenant_id)
        )
        return frozenset(result.scalars())

    async def add(
        self,
        tenant_id: int,
        phones: Sequence[str],
        *,
        source: str,
        reason: str | None,
        now: datetime,
    ) -> list[str]:
        """Add the numbers not listed yet; the ones this call added, in ``phones`` order.
        One statement however many there are (a CSV file may hold 100,000)."""
        if not phones:
            return []
        statement = _ADD_POSTGRES if is_postgres(self.session) else _ADD_SQLITE
        result = await self.session.execute(
            statement,
            {
                "tenant_id": tenant_id,
                "phones": json.dumps(list(phones)),
                "source": source,
                "reason": reason,
                "now": now,
            },
        )
        added = {str(phone) for phone in result.scalars()}
        return [phone for phone in phones if phone in added]

    async def remove(self, tenant_id: int, phone: str) -> bool:
        """Take a number off the list; False when it was not on it."""
        result = await self.session.execute(
            delete(OptOut)
            .where(OptOut.tenant_id == tenant_id, OptOut.phone == phone)
            .returning(OptOut.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def page(
        self, tenant_id: int, *, phone: str | None, before_id: int | None, limit: int
    ) -> list[OptOut]:
        """The tenant's opt-outs, newest first."""
        query = select(OptOut).where(OptOut.tenant_id == tenant_id)
        if phone is not None:
            query = query.where(OptOut.phone == phone)
        if before_id is not None:
            query = query.where(OptOut.id < before_id)
        result = await self.session.execute(query.order_by(OptOut.id.desc()).limit(limit))
        return list(result.scalars())

    async def count(self, tenant_id: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(OptOut).where(OptOut.tenant_id == tenant_id)
        )
        return int(result.scalar_one())

    async def stop_words(
        self, tenant_ids: Collection[int]
    ) -> dict[int, tuple[list[str] | None, str]]:
        """Each tenant's own stop words (None: the defaults) and its default region."""
        if not tenant_ids:
            return {}
        result = await self.session.execute(
            select(Tenant.id, Tenant.stop_words, Tenant.default_region).where(
                one_of(self.session, Tenant.id, sorted(tenant_ids))
            )
        )
        return {int(tenant_id): (words, str(region)) for tenant_id, words, region in result.all()}

    async def replying(self, tenant_ids: Collection[int]) -> set[int]:
        """The tenants among these that answer an opt-out by stop word (``opt_out_reply``)."""
        if not tenant_ids:
            return set()
        result = await self.session.execute(
            select(Tenant.id).where(
                one_of(self.session, Tenant.id, sorted(tenant_ids)),
                Tenant.opt_out_reply.is_not(None),
            )
        )
        return {int(tenant_id) for tenant_id in result.scalars()}

    async def reply_due(self, tenant_id: int, sessions: dict[str, str]) -> None:
        """The numbers (just added) are owed one reply, through the session (by phone) their
        stop word came through."""
        for phone, session_id in sorted(sessions.items()):
            await self.session.execute(
                update(OptOut)
                .where(
                    OptOut.tenant_id == tenant_id,
                    OptOut.phone == phone,
                    OptOut.reply_status.is_(None),
                )
                .values(session_id=session_id, reply_status=REPLY_DUE)
            )

    async def take_due_replies(self, limit: int) -> list[DueReply]:
        """Up to ``limit`` owed replies, each marked ``sending`` before it is sent: once
        marked, it is never taken again, whatever happens to the send."""
        due = (
            select(OptOut.id)
            .where(OptOut.reply_status == REPLY_DUE)
            .order_by(OptOut.id)
            .limit(limit)
        )
        if is_postgres(self.session):
            due = due.with_for_update(skip_locked=True)
        taken = (
            await self.session.execute(
                update(OptOut)
                .where(OptOut.id.in_(due.scalar_subquery()))
                .values(reply_status=REPLY_SENDING)
                .returning(OptOut.id, OptOut.tenant_id, OptOut.phone, OptOut.session_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not taken:
            return []
        texts = dict(
            (
                await self.session.execute(
                    select(Tenant.id, Tenant.opt_out_reply).where(
                        one_of(self.session, Tenant.id, sorted({int(row[1]) for row in taken}))
                    )
                )
            ).all()
        )
        return [
            DueReply(int(row_id), int(tenant_id), str(phone), session_id, texts.get(tenant_id))
            for row_id, tenant_id, phone, session_id in sorted(taken)
        ]

    async def reply_done(self, opt_out_id: int, status: str, now: datetime) -> None:
        await self.session.execute(
            update(OptOut)
            .where(OptOut.id == opt_out_id, OptOut.reply_status == REPLY_SENDING)
            .values(reply_status=status, reply_at=now)
        )

    async def set_stop_words(self, tenant_id: int, words: list[str] | None) -> None:
        await self.session.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(stop_words=words)
        )

    async def skip_queued(
        self, tenant_id: int, phones: Sequence[str], now: datetime
    ) -> dict[int, int]:
        """Queued recipients of the tenant's active broadcasts with these numbers become
        ``skipped`` (``opted_out``), their counters moved; how many, by broadcast.

        Broadcasts are locked first, in id order, like every writer of them (a claim
        takes its broadcasts, then their recipients). A recipient already ``sending``
        is left to finish.
        """
        if not phones:
            return {}
        active = (
            await self.session.execute(
                select(B.id).where(
                    B.tenant_id == tenant_id,
                    B.status.in_(sorted(s.value for s in ACTIVE_BROADCAST_STATUSES)),
                )
            )
        ).scalars()
        postgres = is_postgres(self.session)
        listed = json.dumps(list(phones))
        candidates = (
            await self.session.execute(
                _CANDIDATES_POSTGRES if postgres else _CANDIDATES_SQLITE,
                {"ids": json.dumps(sorted(int(b) for b in active)), "phones": listed},
            )
        ).scalars()
        candidate_ids = sorted(int(b) for b in candidates)
        if not candidate_ids:
            return {}
        locked = (
            await self.session.execute(
                select(B.id)
                .where(one_of(self.session, B.id, candidate_ids))
                .order_by(B.id)
                .with_for_update()
            )
        ).scalars()
        broadcast_ids = sorted(int(b) for b in locked)
        ensure_transition(RecipientStatus.QUEUED, RecipientStatus.SKIPPED)
        result = await self.session.execute(
            _SKIP_POSTGRES if postgres else _SKIP_SQLITE,
            {
                "ids": json.dumps(broadcast_ids),
                "phones": listed,
                "code": OPTED_OUT,
                "message": OPTED_OUT_MESSAGE,
                "now": now,
            },
        )
        moved: dict[int, int] = defaultdict(int)
        for broadcast_id in result.scalars():
            moved[int(broadcast_id)] += 1
        await shift_counts(
            self.session,
            {b: {(RecipientStatus.QUEUED, RecipientStatus.SKIPPED): n} for b, n in moved.items()},
            now,
            locked=True,
        )
        return dict(moved)

    async def start_emptied(self, broadcast_ids: Collection[int], now: datetime) -> None:
        """Scheduled or queued broadcasts (locked) left with nothing to send move to
        running, so they finish like one that sent its last recipient."""
        if not broadcast_ids:
            return
        result = await self.session.execute(
            select(B.id, B.status, B.queued_at, B.started_at).where(
                one_of(self.session, B.id, sorted(broadcast_ids)),
                B.status.in_(_STARTABLE),
                B.queued_count == 0,
                B.sending_count == 0,
            )
        )
        for broadcast_id, status, queued_at, started_at in result.all():
            if status == BroadcastStatus.SCHEDULED.value:
                ensure_transition(BroadcastStatus.SCHEDULED, BroadcastStatus.QUEUED)
            ensure_transition(BroadcastStatus.QUEUED, BroadcastStatus.RUNNING)
            await self.session.execute(
                update(B)
                .where(B.id == broadcast_id, B.status.in_(_STARTABLE))
                .values(
                    status=BroadcastStatus.RUNNING.value,
                    queued_at=queued_at or now,
                    started_at=started_at or now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
