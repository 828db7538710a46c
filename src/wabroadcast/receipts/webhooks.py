"""Provider webhooks: find the session a call is for, authenticate it, apply its receipts.

A webhook is called by a provider, never with an API key. Each provider's
plug-in says which sessions a call names (its routing keys: a header, Meta's
phone number id, a path segment) and checks the call with that session's
secret. Unknown sessions and bad signatures get the same 401 and write nothing;
a correctly signed body that is malformed is a 400. Receipts for message ids
not recorded yet are answered 200 and kept (``pending``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch.repository.lifecycle import LifecycleRepository
from wabroadcast.domain.errors import (
    Forbidden,
    ProviderNotFound,
    WebhookMalformed,
    WebhookUnauthorized,
)
from wabroadcast.observability.logging import BROADCAST_TAG, SEND_TAG, get_logger
from wabroadcast.opt_outs.effects import InboundText, opt_out_senders_of_stop_words
from wabroadcast.providers.base import (
    InboundMessage,
    Receipt,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.plugin import ProviderPlugin, WebhookSpec
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.receipts import pending
from wabroadcast.receipts.repository import ReceiptRepository
from wabroadcast.receipts.service import ApplyResult, apply_receipts
from wabroadcast.replies.service import attribute_replies
from wabroadcast.sessions.repository import SessionRepository

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

log = get_logger("wabroadcast.receipts")

MAX_KEY_LENGTH = 128
MAX_KEYS = 100
UNAUTHORIZED_MESSAGE = "Webhook not accepted: unknown session or bad signature"


def webhook_of(provider: str) -> tuple[ProviderPlugin, WebhookSpec]:
    """The plug-in and webhook of ``provider``; ``ProviderNotFound`` when it has none."""
    plugin = PLUGINS.get(provider)
    if plugin is None or plugin.webhook is None:
        raise ProviderNotFound(
            "No webhook for this provider", details={"provider": provider[:MAX_KEY_LENGTH]}
        )
    return plugin, plugin.webhook


async def handle_webhook(
    ctx: AppContext,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    path_key: str | None = None,
) -> ApplyResult:
    """Authenticate a provider's webhook call and apply its receipts in one transaction."""
    plugin, webhook = webhook_of(provider)
    keys = [
        key
        for key in webhook.routing_keys(headers, body, path_key)
        if key and len(key) <= MAX_KEY_LENGTH
    ][:MAX_KEYS]
    result = ApplyResult()
    accepted: list[tuple[str, list[Receipt]]] = []
    async with ctx.database.transaction() as session:
        rows = await SessionRepository(session).by_webhook_keys(plugin.kind, keys)
        refused: Exception | None = None
        inbound: list[tuple[WhatsAppSession, InboundMessage]] = []
        for row in rows:
            ref = ctx.session_refs.of(row)
            try:
                receipts = webhook.parse(ref, headers, body)
            except WebhookSignatureInvalid as exc:
                refused = exc
                continue
            except WebhookBodyInvalid as exc:
                _log_refused(provider, row.id, exc)
                raise WebhookMalformed(f"Malformed webhook body: {exc}") from None
            accepted.append((row.id, receipts))
            if webhook.inbound is not None:
                inbound += [(row, message) for message in webhook.inbound(ref, headers, body)]
        if not accepted:
            _log_refused(provider, ",".join(keys)[:200] or None, refused or "unknown session")
            raise WebhookUnauthorized(UNAUTHORIZED_MESSAGE)
        unknown: list[tuple[str, Receipt]] = []
        now = ctx.clock.now()
        # Before the receipts: a stop word locks its tenant first, then broadcasts, in the
        # order every opt-out takes them (``opt_outs.repository.OptOutRepository``).
        await _keep_inbound(session, inbound, now, ctx.settings.reply_window_s)
        for session_id, receipts in accepted:
            result += await apply_receipts(session, session_id, receipts, now, unknown)
        await pending.keep(session, unknown, now)
        paused = await _pause_restricted(session, accepted, now)
    if paused:
        log.warning(
            f"{BROADCAST_TAG} paused: the provider reports the account restricted",
            broadcast_id=paused,
            provider=provider,
        )
    log.info(
        f"{SEND_TAG} webhook",
        broadcast_id=None,
        provider=provider,
        session_id=[session_id for session_id, _ in accepted],
        receipts=sum(len(receipts) for _, receipts in accepted),
        applied=result.applied,
        ignored=result.ignored,
        unknown=result.unknown,
    )
    return result


async def _keep_inbound(
    session: AsyncSession,
    inbound: list[tuple[WhatsAppSession, InboundMessage]],
    now: datetime,
    reply_window_s: float,
) -> None:
    """Store the inbound messages and act on the new ones (a stop word opts its sender
    out, a message within the reply window of a send marks its recipient replied), in
    the webhook's transaction: a message is never stored without its effect."""
    new = await ReceiptRepository(session).keep_inbound(
        [
            {
                "tenant_id": row.tenant_id,
                "session_id": row.id,
                "provider_message_id": message.provider_message_id,
                "from_phone": message.from_phone,
                "text": message.text,
                "sent_at": message.at,
                "received_at": now,
            }
            for row, message in inbound
        ]
    )
    new_texts = [
        InboundText(row.tenant_id, message.from_phone, message.text, row.id)
        for row, message in inbound
        if (row.id, message.provider_message_id) in new
    ]
    await opt_out_senders_of_stop_words(session, new_texts, now)
    await attribute_replies(session, new_texts, reply_window_s, now)


async def _pause_restricted(
    session: AsyncSession, accepted: list[tuple[str, list[Receipt]]], now: datetime
) -> list[int]:
    """Pause the broadcasts of sessions whose provider reported the account restricted,
    as an account-level error from a send does (after the receipts: recipients are
    locked before broadcasts, as everywhere)."""
    paused: list[int] = []
    for session_id, receipts in accepted:
        blocked = next((r for r in receipts if r.account_blocked), None)
        if blocked is not None:
            paused += await LifecycleRepository(session).pause_session_broadcasts(
                session_id, blocked.error_message or "the account is restricted", now
            )
    return paused


async def verify_subscription(ctx: AppContext, provider: str, query: Mapping[str, str]) -> str:
    """The answer to a provider's GET handshake (Meta's ``hub.challenge``); 403 if the
    token is no session's, 404 if the provider has no handshake."""
    plugin, webhook = webhook_of(provider)
    if webhook.verify_subscription is None:
        raise ProviderNotFound(
            "This provider's webhook has no subscription handshake",
            details={"provider": plugin.kind},
        )
    async with ctx.database.transaction() as session:
        rows = await SessionRepository(session).of_provider(plugin.kind)
        refs = [ctx.session_refs.of(row) for row in rows]
    answer = webhook.verify_subscription(query, refs)
    if answer is None:
        log.warning(
            f"{SEND_TAG} webhook subscription refused", broadcast_id=None, provider=provider
        )
        raise Forbidden("The verify token is not one of this provider's sessions")
    return answer


def _log_refused(provider: str, keys: str | None, reason: object) -> None:
    log.warning(
        f"{SEND_TAG} webhook refused",
        broadcast_id=None,
        provider=provider,
        session_key=keys,
        reason=str(reason),
    )
