"""The simulated WhatsApp's "delivered" receipts, handed out by any worker, each once.

A real provider calls our webhook; the simulator has no process of its own, so
every worker pass delivers the receipts that are due (the plug-in's background
work), through the same rules as a webhook's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.observability.logging import SEND_TAG, get_logger
from wabroadcast.providers.base import Receipt, ReceiptStatus, SendOutcome
from wabroadcast.providers.simulator.repository.receipts import ReceiptPumpRepository
from wabroadcast.providers.simulator.repository.scenarios import ScenarioRepository
from wabroadcast.providers.simulator.repository.send_log import SendLogRepository
from wabroadcast.providers.simulator.rules import Scenario, deliver_at
from wabroadcast.receipts.repository import ReceiptRepository
from wabroadcast.receipts.service import apply_receipt_groups

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

log = get_logger("wabroadcast.simulator")

# How long the simulator keeps retrying a receipt whose send is not recorded yet.
UNKNOWN_RECEIPT_PATIENCE = timedelta(minutes=10)
UNKNOWN_RECEIPT_RETRY = timedelta(seconds=2)


async def end_abandoned_sends(session: AsyncSession, now: datetime, limit: int) -> int:
    """Log the end of sends whose caller died before it could (``abandoned_sends``); returns
    how many.

    Such a send reached WhatsApp (its start is in the log) and WhatsApp answered it
    all the same: it counts as accepted (``ORIGINAL_SEND``), and a retry of its id
    was answered as a repeat of it, so the dispatcher recorded its recipient ``sent``
    with its provider message id. It is ended as accepted when it was answered, so
    its "delivered" receipt is due like any other's (none for a repeat, or when the
    session's scenario gives no receipts). Nothing is sent: only the log's record
    of an answer is completed.
    """
    abandoned = await ReceiptPumpRepository(session).abandoned_sends(now, limit)
    if not abandoned:
        return 0
    scenarios = await ScenarioRepository(session).scenarios(
        sorted({send.session_id for send in abandoned})
    )
    await SendLogRepository(session).finish_sends(
        [
            {
                "id": send.id,
                "finished_at": send.answered_at,
                "outcome": SendOutcome.SENT.value,
                "error_code": None,
                "deliver_at": deliver_at(
                    scenarios.get(send.session_id, Scenario()),
                    SendOutcome.SENT,
                    send.repeat,
                    send.answered_at,
                ),
            }
            for send in abandoned
        ]
    )
    log.warning(
        f"{SEND_TAG} simulator sends ended whose caller died before logging their end",
        broadcast_id=None,
        ended=len(abandoned),
    )
    return len(abandoned)


async def deliver_due_receipts(ctx: AppContext, limit: int = 500) -> int:
    """Deliver the simulator's due "delivered" receipts, each exactly once; returns how many.

    Called periodically by workers. Sends whose caller died before logging their
    end are ended first (``end_abandoned_sends``), so they get their receipts too.
    The due rows are claimed, applied through ``apply_receipts``' rules and marked
    sent in one transaction; on PostgreSQL rows another worker holds are skipped,
    so two workers never deliver the same receipt.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        repo = ReceiptPumpRepository(session)
        recipients = ReceiptRepository(session)
        await end_abandoned_sends(session, now, limit)
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
