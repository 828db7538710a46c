"""The simulated WhatsApp's "delivered" receipts, handed out by any worker, each once.

A real provider calls our webhook; the simulator has no process of its own, so
every worker pass delivers the receipts that are due (the plug-in's background
work), through the same rules as a webhook's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

from wabroadcast.observability.logging import SEND_TAG, get_logger
from wabroadcast.providers.base import Receipt, ReceiptStatus
from wabroadcast.providers.simulator.repository import SimulatorRepository
from wabroadcast.receipts.repository import ReceiptRepository
from wabroadcast.receipts.service import apply_receipt_groups

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

log = get_logger("wabroadcast.simulator")

# How long the simulator keeps retrying a receipt whose send is not recorded yet.
UNKNOWN_RECEIPT_PATIENCE = timedelta(minutes=10)
UNKNOWN_RECEIPT_RETRY = timedelta(seconds=2)


async def deliver_due_receipts(ctx: AppContext, limit: int = 500) -> int:
    """Deliver the simulator's due "delivered" receipts, each exactly once; returns how many.

    Called periodically by workers. The due rows are claimed, applied through
    ``apply_receipts``' rules and marked sent in one transaction; on PostgreSQL
    rows another worker holds are skipped, so two workers never deliver the
    same receipt.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        repo = SimulatorRepository(session)
        recipients = ReceiptRepository(session)
        due = await repo.claim_due_receipts(now, limit)
        if not due:
            return 0
        # A receipt can overtake the dispatcher's record of its send (the send's
        # result is written in batches). Like a provider retrying its webhook,
        # hold such a receipt back for a while instead of losing it.
        known: set[tuple[str, str]] = set()
        for session_id in {item.session_id for item in due}:
            ids = {item.provider_message_id for item in due if item.session_id == session_id}
            rows = await recipients.recipients_by_provider_ids(session_id, ids)
            known |= {(session_id, row.provider_message_id) for row in rows}
        held = [
            item
            for item in due
            if (item.session_id, item.provider_message_id) not in known
            and item.started_at > now - UNKNOWN_RECEIPT_PATIENCE
        ]
        if held:
            await repo.postpone_receipts([item.id for item in held], now + UNKNOWN_RECEIPT_RETRY)
            held_ids = {item.id for item in held}
            due = [item for item in due if item.id not in held_ids]
            if not due:
                return 0
        groups: dict[str, list[Receipt]] = defaultdict(list)
        for item in due:
            groups[item.session_id].append(
                Receipt(item.provider_message_id, ReceiptStatus.DELIVERED, at=item.deliver_at)
            )
        result = await apply_receipt_groups(session, groups, now)
        await repo.mark_receipts_sent([item.id for item in due], now)
    log.info(
        f"{SEND_TAG} simulator receipts delivered",
        broadcast_id=None,
        delivered=len(due),
        applied=result.applied,
        ignored=result.ignored,
        unknown=result.unknown,
    )
    return len(due)
