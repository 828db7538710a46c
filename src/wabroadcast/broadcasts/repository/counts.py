"""Per-status counters of broadcasts, kept equal to their recipients' statuses, and the
outcome late receipts settle. Every writer of recipient statuses moves them here."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import UTCDateTime, WhatsAppBroadcast, table_of
from wabroadcast.domain.status import (
    SETTLED_BROADCAST_STATUSES,
    BroadcastStatus,
    RecipientStatus,
)

COUNT_COLUMNS: dict[RecipientStatus, str] = {
    RecipientStatus.QUEUED: "queued_count",
    RecipientStatus.SENDING: "sending_count",
    RecipientStatus.SENT: "sent_count",
    RecipientStatus.DELIVERED: "delivered_count",
    RecipientStatus.READ: "read_count",
    RecipientStatus.FAILED: "failed_count",
    RecipientStatus.CANCELLED: "cancelled_count",
    RecipientStatus.SKIPPED: "skipped_count",
}


# The counters of any number of broadcasts in one statement (PostgreSQL): each row
# takes its deltas from a JSON array of [id, queued, sending, sent, delivered, read,
# failed, cancelled, skipped]. The rows are locked first, in id order, by SHIFT_LOCK_POSTGRES.
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
        skipped_count = b.skipped_count + d.skipped,
        updated_at = :at
    FROM (
        SELECT (v ->> 0)::bigint AS id, (v ->> 1)::int AS queued, (v ->> 2)::int AS sending,
               (v ->> 3)::int AS sent, (v ->> 4)::int AS delivered, (v ->> 5)::int AS read,
               (v ->> 6)::int AS failed, (v ->> 7)::int AS cancelled,
               (v ->> 8)::int AS skipped
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
    "skipped_count",
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
        (
            and_(or_(sent > 0, b.skipped_count > 0), b.failed_count == 0),
            BroadcastStatus.COMPLETED.value,
        ),
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
    moved = [(int(i), str(status), int(n), int(f)) for i, status, n, f in result.all()]
    await Outbox(session).broadcasts_changed([broadcast_id for broadcast_id, *_ in moved], at)
    return moved
