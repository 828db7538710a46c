"""What an opt-out does, inside the caller's transaction: the number is listed, its queued
recipients are skipped, and broadcasts left with nothing to send finish.

Free of the app context, so the webhook path (which stores inbound messages) can
call it in its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.finishing import finish_done
from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.domain.opt_outs import is_stop_word, stop_word_keys
from wabroadcast.domain.phones import InvalidPhone, mask_phone, normalize_phone
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.opt_outs.repository import OptOutRepository

log = get_logger("wabroadcast.opt_outs")


@dataclass(frozen=True, slots=True)
class InboundText:
    """An inbound message as opt-outs see it: who sent what to which tenant."""

    tenant_id: int
    from_phone: str
    text: str | None
    # The session it came through (where an opt-out's reply goes back).
    session_id: str | None = None


async def opt_out_senders_of_stop_words(
    session: AsyncSession, messages: Sequence[InboundText], now: datetime
) -> dict[int, int]:
    """Opt out the senders of inbound messages that are a stop word of their tenant, in
    the caller's transaction (the one that stores the messages); recipients skipped,
    by broadcast."""
    if not messages:
        return {}
    repo = OptOutRepository(session)
    tenants = await repo.stop_words({m.tenant_id for m in messages})
    by_tenant: dict[int, list[str]] = {}
    # Where each number's stop word came through: its one reply goes back there.
    came_through: dict[int, dict[str, str]] = {}
    for message in messages:
        words, region = tenants.get(message.tenant_id, (None, ""))
        if not region or not is_stop_word(message.text, stop_word_keys(words)):
            continue
        result = normalize_phone(message.from_phone, region)
        if not isinstance(result, InvalidPhone):
            by_tenant.setdefault(message.tenant_id, []).append(result.e164)
            if message.session_id is not None:
                came_through.setdefault(message.tenant_id, {})[result.e164] = message.session_id
    replying = await repo.replying(set(by_tenant))
    skipped: dict[int, int] = {}
    for tenant_id, phones in sorted(by_tenant.items()):
        added, moved = await opt_out(
            session, tenant_id, sorted(set(phones)), "inbound", "stop word", now
        )
        skipped.update(moved)
        if tenant_id in replying:
            sessions = came_through.get(tenant_id, {})
            await repo.reply_due(tenant_id, {p: sessions[p] for p in added if p in sessions})
        log.info(
            f"{BROADCAST_TAG} numbers opted out",
            broadcast_id=sorted(moved),
            tenant_id=tenant_id,
            source="inbound",
            added_count=len(added),
            skipped_count=sum(moved.values()),
            first_added=[mask_phone(p) for p in added[:5]],
        )
    return skipped


async def opt_out(
    session: AsyncSession,
    tenant_id: int,
    phones: Sequence[str],
    source: str,
    reason: str | None,
    now: datetime,
) -> tuple[list[str], dict[int, int]]:
    """Add the numbers, skip their queued recipients and finish the broadcasts that
    have nothing left; (numbers added, recipients skipped by broadcast)."""
    repo = OptOutRepository(session)
    await repo.lock_tenant(tenant_id)
    added = await repo.add(tenant_id, phones, source=source, reason=reason, now=now)
    await Outbox(session).numbers_opted_out(tenant_id, added, source, reason, now)
    skipped = await repo.skip_queued(tenant_id, added, now)
    if skipped:
        await repo.start_emptied(skipped, now)
        await finish_done(session, skipped, now)
    return added, skipped
