"""The one reply to a number that opted out by a stop word, sent by any worker.

The webhook that stored the stop word marks the opt-out ``due`` in its own
transaction (only when the number was newly added and its tenant has an
``opt_out_reply``), so a second STOP gets no second reply. A worker takes due
replies by marking them ``sending`` and committing before the provider call: a
reply is sent at most once, and one whose worker died during the call is never
sent again (a person who asked to stop must not get two messages about it). It
is a direct answer to the person's own message, so it is not held by quiet hours,
daily caps or pace.
"""

from __future__ import annotations

from wabroadcast.context import AppContext
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.domain.phones import mask_phone
from wabroadcast.observability.logging import SEND_TAG, get_logger
from wabroadcast.opt_outs.repository import (
    REPLY_FAILED,
    REPLY_SENT,
    DueReply,
    OptOutRepository,
)
from wabroadcast.providers.base import OutgoingMessage, SendOutcome
from wabroadcast.sessions.repository import SessionRepository

log = get_logger("wabroadcast.opt_outs")

# Replies taken per pass.
BATCH = 20


async def send_due_replies(ctx: AppContext, limit: int = BATCH) -> int:
    """Send the replies owed now; how many were taken."""
    async with ctx.database.transaction() as db:
        due = await OptOutRepository(db).take_due_replies(limit)
    for reply in due:
        status = await _send(ctx, reply)
        async with ctx.database.transaction() as db:
            await OptOutRepository(db).reply_done(reply.opt_out_id, status, ctx.clock.now())
    return len(due)


async def _send(ctx: AppContext, reply: DueReply) -> str:
    """One reply through the session the stop word came through: ``sent`` or ``failed``."""
    fields = {"broadcast_id": None, "phone": mask_phone(reply.phone), "tenant_id": reply.tenant_id}
    if reply.text is None or reply.session_id is None:
        log.info(f"{SEND_TAG} opt-out reply not sent: no reply set any more", **fields)
        return REPLY_FAILED
    async with ctx.database.transaction() as db:
        row = await SessionRepository(db).get(reply.tenant_id, reply.session_id)
    if row is None:
        log.warning(f"{SEND_TAG} opt-out reply not sent: the session is gone", **fields)
        return REPLY_FAILED
    message = OutgoingMessage(reply.phone, reply.text, f"wab-optout-{reply.opt_out_id}")
    try:
        ref = ctx.session_refs.of(row)
        answer = await ctx.providers.for_kind(row.provider).send(ref, message)
    except (SecretKeyMissing, SecretsUnreadable) as exc:
        log.error(f"{SEND_TAG} opt-out reply not sent: {exc}", session_id=row.id, **fields)
        return REPLY_FAILED
    except Exception as exc:
        log.warning(
            f"{SEND_TAG} opt-out reply failed", session_id=row.id, error=repr(exc), **fields
        )
        return REPLY_FAILED
    sent = answer.outcome is SendOutcome.SENT
    log.info(
        f"{SEND_TAG} opt-out reply {'sent' if sent else 'failed'}",
        session_id=row.id,
        outcome=answer.outcome.value,
        error_code=answer.error_code,
        **fields,
    )
    return REPLY_SENT if sent else REPLY_FAILED
