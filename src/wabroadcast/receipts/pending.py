"""Receipts that arrive before their send is recorded: kept, and applied once it is.

A provider answers a send and reports its delivery within moments; the worker
writes results in batches, so a webhook can name a message id no recipient has
yet. The webhook still answers 200 (a provider retries, or gives up, otherwise)
and keeps the receipt here; worker passes apply it once the id is known, and
forget it after ``PENDING_TTL``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import PendingReceipt
from wabroadcast.observability.logging import SEND_TAG, get_logger
from wabroadcast.providers.base import Receipt, ReceiptStatus
from wabroadcast.receipts.repository import ReceiptRepository
from wabroadcast.receipts.service import apply_receipt_groups

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

log = get_logger("wabroadcast.receipts")

PENDING_TTL = timedelta(minutes=10)
PENDING_BATCH = 500


async def keep(session: AsyncSession, unknown: Sequence[tuple[str, Receipt]], at: datetime) -> None:
    """Keep receipts for messages not recorded yet (the caller owns the transaction)."""
    await ReceiptRepository(session).keep_pending(
        [
            PendingReceipt(
                session_id=session_id,
                provider_message_id=receipt.provider_message_id,
                status=receipt.status.value,
                at=receipt.at,
                error_code=receipt.error_code,
                error_message=receipt.error_message,
                received_at=at,
            )
            for session_id, receipt in unknown
        ]
    )


async def apply_pending(ctx: AppContext) -> int:
    """Apply the kept receipts whose message is now recorded, forget the expired ones;
    how many were applied. Run by every worker pass."""
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        repo = ReceiptRepository(session)
        rows = await repo.pending(PENDING_BATCH)
        if not rows:
            return 0
        groups: dict[str, list[Receipt]] = defaultdict(list)
        by_key: dict[tuple[str, str], list[PendingReceipt]] = defaultdict(list)
        for row in rows:
            by_key[(row.session_id, row.provider_message_id)].append(row)
        known: set[tuple[str, str]] = set()
        for session_id in sorted({row.session_id for row in rows}):
            ids = {row.provider_message_id for row in rows if row.session_id == session_id}
            found = await repo.recipients_by_provider_ids(session_id, ids)
            known |= {(session_id, recipient.provider_message_id) for recipient in found}
        applied = [row for key in sorted(known) for row in by_key[key]]
        for row in applied:
            groups[row.session_id].append(
                Receipt(
                    row.provider_message_id,
                    ReceiptStatus(row.status),
                    row.at,
                    row.error_code,
                    row.error_message,
                )
            )
        expired = [
            row
            for row in rows
            if (row.session_id, row.provider_message_id) not in known
            and row.received_at <= now - PENDING_TTL
        ]
        if groups:
            await apply_receipt_groups(session, groups, now)
        await repo.forget_pending([row.id for row in [*applied, *expired]])
    if applied or expired:
        log.info(
            f"{SEND_TAG} early receipts applied",
            broadcast_id=None,
            applied=len(applied),
            expired=len(expired),
        )
    return len(applied)
