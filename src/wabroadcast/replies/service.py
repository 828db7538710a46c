"""Attribute inbound messages to the broadcasts they answer, in the caller's transaction
(the webhook's, which stores the messages): a message is never kept without its reply
marked, counted and told to the CRM (``recipient.replied``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.domain.phones import InvalidPhone, mask_phone, normalize_phone
from wabroadcast.domain.replies import reply_excerpt
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.opt_outs.effects import InboundText
from wabroadcast.replies.repository import MarkedReply, ReplyRepository

log = get_logger("wabroadcast.replies")


async def attribute_replies(
    session: AsyncSession, messages: Sequence[InboundText], window_s: float, now: datetime
) -> list[MarkedReply]:
    """Mark the recipients that new inbound messages reply to: the tenant's recipients
    with the sender's number, sent to within ``window_s`` before ``now`` and not marked
    yet, each with the first of its sender's texts in this batch."""
    if not messages:
        return []
    repo = ReplyRepository(session)
    regions = await repo.regions([m.tenant_id for m in messages])
    texts: dict[tuple[int, str], str | None] = {}
    for message in messages:
        region = regions.get(message.tenant_id)
        if not region:
            continue
        result = normalize_phone(message.from_phone, region)
        if not isinstance(result, InvalidPhone):
            texts.setdefault((message.tenant_id, result.e164), reply_excerpt(message.text))
    marked = await repo.mark_replies(texts, now - timedelta(seconds=window_s), now)
    await Outbox(session).recipients_replied(marked, now)
    for reply in marked:
        log.info(
            f"{BROADCAST_TAG} recipient replied",
            broadcast_id=reply.broadcast_id,
            recipient_id=reply.recipient_id,
            phone=mask_phone(reply.phone),
        )
    return marked
