"""SQL of send results: each written only where its recipient is still ``sending`` under
the lease epoch it was claimed with, counted on its broadcast in the same transaction;
and the orphans a dead worker left ``sending``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, literal, literal_column, null, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ClauseElement

from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.crm_webhooks.outbox import FailedRecipient, Outbox
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.models import (
    SessionLease,
    UTCDateTime,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    table_of,
)
from wabroadcast.dispatch.repository.rows import Moves, Result, add_move
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus

R = WhatsAppBroadcastRecipient
B = WhatsAppBroadcast
# Ids per IN list on SQLite (it allows 32,766 parameters per statement).
SQLITE_CHUNK = 500


def sent_row(provider_message_id: Any, now: Any) -> dict[str, Any]:
    """The columns a "sent" result writes, whichever statement writes them."""
    return {
        "status": RecipientStatus.SENT.value,
        "provider_message_id": provider_message_id,
        "sent_at": now,
        "error_code": None,
        "error_message": None,
        "updated_at": now,
    }


def _sql(value: Any) -> ClauseElement:
    if value is None:
        return null()
    return value if isinstance(value, ClauseElement) else literal(value)


def _postgres_set(values: dict[str, Any]) -> str:
    """A SET list for hand-written PostgreSQL, from column values (SQL fragments)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return ",\n        ".join(
        f"{column} = "
        + str(_sql(value).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for column, value in values.items()
    )


# Sent results on PostgreSQL, any number of any leases in one statement, counted
# per broadcast (for the broadcasts' counters). The results go as one JSON array of
# [id, provider id, lease epoch], parsed once: the text stays the same whatever
# the batch size, and no per-value formatting happens in Python. The array's
# estimated 100 rows make each one an index lookup, on a table of any size.
_SENT_SET = _postgres_set(sent_row(literal_column("e ->> 1"), literal_column(":now")))
RECORD_SENT_POSTGRES = text(
    f"""
    WITH sent AS (
    UPDATE whatsapp_broadcast_recipients AS r
    SET {_SENT_SET}
    FROM json_array_elements(CAST(:sent AS json)) AS e
    WHERE r.id = CAST(e ->> 0 AS bigint)
      AND r.lease_epoch = CAST(e ->> 2 AS bigint)
      AND r.status = 'sending'
    RETURNING r.broadcast_id
    )
    SELECT broadcast_id, count(*) FROM sent GROUP BY broadcast_id
    """  # noqa: S608 (only constants are formatted in)
).bindparams(bindparam("now", type_=UTCDateTime()))


class ResultRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self, results: Iterable[Result], now: datetime, *, fenced: bool = True
    ) -> set[int]:
        """Write each result where the recipient is still ``sending`` under its epoch.

        A result whose epoch no longer matches belongs to a worker that lost its
        lease; it is dropped, never written over the new holder's state. Only
        recovery passes ``fenced=False``: it resolves orphans it has just locked,
        whose lease is gone, and never to ``sent``. Returns the broadcasts touched.
        """
        moves: Moves = {}
        failures: list[FailedRecipient] = []
        rest: list[Result] = []
        sent: list[Result] = []
        for item in results:
            (sent if item.status is RecipientStatus.SENT else rest).append(item)
        if sent and not fenced:
            raise ValueError("a send is recorded as sent only under its lease epoch")
        await self._record_sent(sent, now, moves)
        for item in rest:
            values: dict[str, object] = {
                "status": item.status.value,
                "updated_at": now,
                "error_code": item.error_code,
                "error_message": item.error_message,
            }
            if item.status is RecipientStatus.FAILED:
                values["failed_at"] = now
            else:
                values["next_attempt_at"] = item.next_attempt_at or now
                if not item.keep_client_message_id:
                    values["client_message_id"] = None
                if item.refund_attempt:
                    values["attempts"] = R.attempts - 1
            fence = R.lease_epoch == item.epoch if fenced else R.id == item.recipient_id
            result = await self.session.execute(
                update(R)
                .where(R.id == item.recipient_id, fence, R.status == RecipientStatus.SENDING.value)
                .values(values)
                .returning(R.id, R.tenant_id, R.phone, R.lead_id)
                .execution_options(synchronize_session=False)
            )
            row = result.first()
            if row is not None:
                add_move(moves, item.broadcast_id, RecipientStatus.SENDING, item.status)
                if item.status is RecipientStatus.FAILED:
                    failures.append(
                        FailedRecipient(
                            int(row.tenant_id),
                            item.broadcast_id,
                            item.recipient_id,
                            row.phone,
                            row.lead_id,
                            item.error_code,
                            item.error_message,
                        )
                    )
        await shift_counts(self.session, moves, now)
        # After the counts: the broadcasts are locked, so their events keep commit order.
        await Outbox(self.session).recipients_failed(failures, now)
        return set(moves)

    async def _record_sent(self, sent: Sequence[Result], now: datetime, moves: Moves) -> None:
        """The common result, sent, in one statement (PostgreSQL) or one per lease (SQLite)."""
        if not sent:
            return
        if is_postgres(self.session):
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
            add_move(moves, broadcast_id, RecipientStatus.SENDING, RecipientStatus.SENT, count)

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
            table = table_of(R)
            await self.session.execute(
                update(table)
                .where(table.c.id == bindparam("rid"))
                .values(sent_row(bindparam("pmid"), now)),
                [{"rid": rid, "pmid": provider_ids[rid]} for rid, _ in fenced],
            )
        return [broadcast_id for _, broadcast_id in fenced]

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
