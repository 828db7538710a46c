"""Operator controls over a broadcast: cancel, pause, resume and retry its failed recipients."""

from __future__ import annotations

from wabroadcast.broadcasts.repository.broadcasts import BroadcastRepository
from wabroadcast.broadcasts.repository.retries import RetryRepository
from wabroadcast.broadcasts.schemas import (
    BroadcastOut,
    RetryFailedOut,
)
from wabroadcast.broadcasts.views import (
    broadcast_out,
)
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.db.models import WhatsAppBroadcast
from wabroadcast.domain.errors import (
    BroadcastFinished,
    BroadcastNotFound,
    InvalidStatusTransition,
)
from wabroadcast.domain.failures import retryable_codes
from wabroadcast.domain.status import (
    FINAL_BROADCAST_STATUSES,
    SETTLED_BROADCAST_STATUSES,
    BroadcastStatus,
    can_transition,
    ensure_transition,
)
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.broadcasts")

# The ``status_reason`` of a broadcast an operator paused (an account-level pause has
# WhatsApp's reason instead); resume clears either.
PAUSED_BY_OPERATOR = "Paused by hand; resume it to send the rest."


async def _locked(
    repo: BroadcastRepository, tenant: TenantContext, broadcast_id: int
) -> WhatsAppBroadcast:
    """The tenant's broadcast, locked until the transaction ends (404 if there is none)."""
    broadcast = await repo.get_for_update(tenant.tenant_id, broadcast_id)
    if broadcast is None:
        raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": broadcast_id})
    return broadcast


def _already_finished(broadcast_id: int, status: BroadcastStatus) -> BroadcastFinished:
    return BroadcastFinished(
        f"The broadcast already finished as {status.value}",
        details={"broadcast_id": broadcast_id, "status": status.value},
    )


async def cancel_broadcast(
    ctx: AppContext, tenant: TenantContext, broadcast_id: int
) -> BroadcastOut:
    """Stop a broadcast: queued recipients are cancelled, sends in flight finish.

    Cancelling a cancelled broadcast is a no-op; a finished one is a 409.
    """
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        repo = BroadcastRepository(session)
        broadcast = await _locked(repo, tenant, broadcast_id)
        current = BroadcastStatus(broadcast.status)
        if current is BroadcastStatus.CANCELLED:
            return broadcast_out(broadcast)
        if not can_transition(current, BroadcastStatus.CANCELLED):
            raise _already_finished(broadcast_id, current)
        cancelled = await repo.cancel_queued(broadcast_id, now)
        broadcast.status = BroadcastStatus.CANCELLED.value
        broadcast.finished_at = now
        broadcast.updated_at = now
        await session.flush()
        await Outbox(session).broadcasts_changed([broadcast_id], now)
        await session.refresh(broadcast)
        out = broadcast_out(broadcast)
    log.info(
        f"{BROADCAST_TAG} cancelled",
        broadcast_id=broadcast_id,
        cancelled_recipients=cancelled,
        queued_count=out.queued_count,
        sent_count=out.sent_count,
        failed_count=out.failed_count,
    )
    return out


async def resume_broadcast(
    ctx: AppContext, tenant: TenantContext, broadcast_id: int
) -> BroadcastOut:
    """Send a paused broadcast again, once its account-level problem is dealt with.

    It goes back to ``running`` (``queued`` if nothing was sent yet) and its reason
    is cleared; workers take its held recipients on their next pass. If WhatsApp
    still refuses the account, the first send pauses it again. Resuming a broadcast
    that is not paused but still sending changes nothing; a finished one is a 409.
    """
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        broadcast = await _locked(BroadcastRepository(session), tenant, broadcast_id)
        current = BroadcastStatus(broadcast.status)
        if current in FINAL_BROADCAST_STATUSES:
            raise _already_finished(broadcast_id, current)
        if current is not BroadcastStatus.PAUSED:
            return broadcast_out(broadcast)
        resumed = BroadcastStatus.RUNNING if broadcast.started_at else BroadcastStatus.QUEUED
        ensure_transition(current, resumed)
        reason = broadcast.status_reason
        broadcast.status = resumed.value
        broadcast.status_reason = None
        broadcast.updated_at = now
        await session.flush()
        await session.refresh(broadcast)
        out = broadcast_out(broadcast)
    log.info(
        f"{BROADCAST_TAG} resumed",
        broadcast_id=broadcast_id,
        status=out.status,
        paused_for=reason,
        queued_count=out.queued_count,
        sent_count=out.sent_count,
        failed_count=out.failed_count,
    )
    return out


async def pause_broadcast(
    ctx: AppContext, tenant: TenantContext, broadcast_id: int
) -> BroadcastOut:
    """Stop starting sends of a broadcast until it is resumed.

    Workers claim nothing more for it; recipients already claimed (``sending``) are
    sent and recorded, so it may still finish from ``paused`` if those were its last.
    Pausing a paused broadcast changes nothing (an account-level pause keeps its
    reason); a finished one is a 409, and so is a scheduled one (nothing is sent before
    its ``send_at``; cancel it instead).
    """
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        broadcast = await _locked(BroadcastRepository(session), tenant, broadcast_id)
        current = BroadcastStatus(broadcast.status)
        if current is BroadcastStatus.PAUSED:
            return broadcast_out(broadcast)
        if current in FINAL_BROADCAST_STATUSES:
            raise _already_finished(broadcast_id, current)
        if current is BroadcastStatus.SCHEDULED:
            # Resuming would queue it before its time; nothing is sent before send_at anyway.
            raise InvalidStatusTransition(
                "A scheduled broadcast cannot be paused: nothing is sent before its send_at; "
                "cancel it instead",
                details={"broadcast_id": broadcast_id, "from": current.value, "to": "paused"},
            )
        ensure_transition(current, BroadcastStatus.PAUSED)
        broadcast.status = BroadcastStatus.PAUSED.value
        broadcast.status_reason = PAUSED_BY_OPERATOR
        broadcast.updated_at = now
        await session.flush()
        await Outbox(session).broadcasts_changed([broadcast_id], now)
        await session.refresh(broadcast)
        out = broadcast_out(broadcast)
    log.info(
        f"{BROADCAST_TAG} paused by hand",
        broadcast_id=broadcast_id,
        paused_from=current.value,
        queued_count=out.queued_count,
        sent_count=out.sent_count,
        failed_count=out.failed_count,
    )
    return out


async def retry_failed(
    ctx: AppContext,
    tenant: TenantContext,
    broadcast_id: int,
    error_codes: list[str] | None = None,
) -> RetryFailedOut:
    """Queue the broadcast's failed recipients whose failure may pass, to be sent again.

    Which ones is ``domain.failures.may_pass`` (``error_codes``: only these; None or
    empty: every code that may pass). They are re-queued with their counters in one
    transaction. A finished broadcast that gets any back is ``running`` again (its
    ``finished_at`` cleared) and finishes again from its counts; a paused one stays
    paused until resumed. A cancelled broadcast is a 409.
    """
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        broadcast = await _locked(BroadcastRepository(session), tenant, broadcast_id)
        current = BroadcastStatus(broadcast.status)
        if current is BroadcastStatus.CANCELLED:
            raise _already_finished(broadcast_id, current)
        repo = RetryRepository(session)
        found = await repo.failed_codes(broadcast_id)
        codes = retryable_codes(found, error_codes)
        requeued = await repo.requeue_failed(broadcast_id, codes, now) if codes else 0
        if requeued and current in SETTLED_BROADCAST_STATUSES:
            ensure_transition(current, BroadcastStatus.RUNNING)
            broadcast.status = BroadcastStatus.RUNNING.value
            broadcast.finished_at = None
            broadcast.updated_at = now
            await session.flush()
    log.info(
        f"{BROADCAST_TAG} failed recipients queued again",
        broadcast_id=broadcast_id,
        requeued=requeued,
        error_codes=sorted(code or "" for code in codes),
        status_before=current.value,
    )
    return RetryFailedOut(requeued=requeued)
