"""What a client sees of a broadcast: the proof of a create, a broadcast, a recipient."""

from __future__ import annotations

from dataclasses import dataclass

from wabroadcast.broadcasts.repository.broadcasts import BroadcastRepository
from wabroadcast.broadcasts.schemas import (
    BroadcastAccepted,
    BroadcastOut,
    InvalidRecipient,
    MissingVariable,
    RecipientItem,
    RecipientOut,
)
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.status import (
    BroadcastStatus,
    RecipientStatus,
)
from wabroadcast.domain.templating import message_preview
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger

log = get_logger("wabroadcast.broadcasts")


ITEMS_IN_PROOF = 100


@dataclass(frozen=True, slots=True)
class CreateResult:
    http_status: int
    body: BroadcastAccepted


def job_id(broadcast_id: int) -> str:
    return f"broadcast_{broadcast_id}"


def sent_total(b: WhatsAppBroadcast) -> int:
    return b.sent_count + b.delivered_count + b.read_count


def broadcast_out(b: WhatsAppBroadcast) -> BroadcastOut:
    return BroadcastOut(
        broadcast_id=b.id,
        status=BroadcastStatus(b.status),
        status_reason=b.status_reason,
        message=b.message,
        template=b.template,
        session_id=b.session_id,
        total_recipients=b.total_recipients,
        queued_count=b.queued_count + b.sending_count,
        sent_count=sent_total(b),
        delivered_count=b.delivered_count + b.read_count,
        read_count=b.read_count,
        failed_count=b.failed_count,
        cancelled_count=b.cancelled_count,
        skipped_count=b.skipped_count,
        invalid_recipients_count=b.invalid_recipients_count,
        duplicates_removed=b.duplicates_removed,
        opted_out_count=b.opted_out_count,
        reply_count=b.reply_count,
        created_at=b.created_at,
        send_at=b.send_at,
        quiet_hours=b.quiet_hours,
        quiet_hours_zone=b.quiet_hours_zone,
        queued_at=b.queued_at,
        started_at=b.started_at,
        finished_at=b.finished_at,
        updated_at=b.updated_at,
    )


def recipient_out(r: WhatsAppBroadcastRecipient, message: str) -> RecipientOut:
    """A recipient as clients see it; ``message`` is its broadcast's text."""
    return RecipientOut(
        recipient_id=r.id,
        phone=r.phone,
        lead_id=r.lead_id,
        name=r.name,
        rendered_message=message if r.rendered_message is None else r.rendered_message,
        status=RecipientStatus(r.status),
        attempts=r.attempts,
        error_code=r.error_code,
        error_message=r.error_message,
        provider_message_id=r.provider_message_id,
        queued_at=r.queued_at,
        sent_at=r.sent_at,
        delivered_at=r.delivered_at,
        read_at=r.read_at,
        failed_at=r.failed_at,
        replied_at=r.replied_at,
        reply_text=r.reply_text,
        updated_at=r.updated_at,
    )


async def replay(
    repo: BroadcastRepository, broadcast: WhatsAppBroadcast, *, http_status: int
) -> CreateResult:
    items = await repo.recipients(broadcast.id, status=None, after_id=None, limit=ITEMS_IN_PROOF)
    log.info(
        f"{BROADCAST_TAG} idempotent replay",
        broadcast_id=broadcast.id,
        tenant_id=broadcast.tenant_id,
        queued_count=broadcast.queued_count + broadcast.sending_count,
        invalid_recipients_count=broadcast.invalid_recipients_count,
        duplicates_removed=broadcast.duplicates_removed,
    )
    body = BroadcastAccepted(
        broadcast_id=broadcast.id,
        job_id=job_id(broadcast.id),
        status=BroadcastStatus(broadcast.status),
        session_id=broadcast.session_id,
        total_recipients=broadcast.total_recipients,
        queued_count=broadcast.queued_count + broadcast.sending_count,
        sent_count=sent_total(broadcast),
        invalid_recipients_count=broadcast.invalid_recipients_count,
        invalid_recipients=[InvalidRecipient(**r) for r in broadcast.invalid_recipients],
        duplicates_removed=broadcast.duplicates_removed,
        opted_out_count=broadcast.opted_out_count,
        opted_out=list(broadcast.opted_out or []),
        missing_variables=[MissingVariable(**m) for m in broadcast.missing_variables or []],
        items=[
            RecipientItem(
                phone=r.phone,
                lead_id=r.lead_id,
                status=RecipientStatus(r.status),
                message_preview=message_preview(r.rendered_message or broadcast.message),
            )
            for r in items
        ],
        idempotent=True,
        connection_check="connected" if broadcast.connection_check == "connected" else "unknown",
        send_at=broadcast.send_at,
    )
    return CreateResult(http_status, body)
