"""Broadcast use cases: accept (validate, dedupe, check, store), read and list.

``create_broadcast`` spans several short transactions on purpose: a client
``Idempotency-Key`` is claimed and committed first (so a concurrent twin sees
it), the provider's connection check runs outside any transaction (it may take
5 s), and the broadcast with all its recipients is written in one final
transaction so no error path leaves a row behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from wabroadcast.broadcasts.client_keys import ClientKey, claim_client_key, release_client_key
from wabroadcast.broadcasts.connection_check import check_connection
from wabroadcast.broadcasts.repository.broadcasts import BroadcastRepository
from wabroadcast.broadcasts.repository.idempotency import IdempotencyRepository
from wabroadcast.broadcasts.schemas import (
    MAX_MESSAGE_CHARS,
    BroadcastAccepted,
    BroadcastCreate,
    InvalidRecipient,
    MissingVariable,
    RecipientItem,
)
from wabroadcast.broadcasts.views import (
    ITEMS_IN_PROOF,
    CreateResult,
    job_id,
    replay,
)
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.outbox import Outbox
from wabroadcast.db.models import WhatsAppBroadcast
from wabroadcast.domain import idempotency
from wabroadcast.domain.errors import (
    AllRecipientsOptedOut,
    MissingVariables,
    NoRecipients,
    NoValidRecipients,
    TooManyRecipients,
    ValidationFailed,
)
from wabroadcast.domain.phones import mask_phone
from wabroadcast.domain.recipients import (
    PersonalMessageFailed,
    RecipientLike,
    RecipientPreparer,
    ValidRecipient,
    prepare_recipients,
)
from wabroadcast.domain.status import (
    BroadcastStatus,
    RecipientStatus,
    ensure_transition,
)
from wabroadcast.domain.templating import (
    InvalidTemplate,
    MessageTemplate,
    compiled,
    message_preview,
)
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.opt_outs.repository import OptOutRepository
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.config import SessionInfo
from wabroadcast.sessions.service import resolve_session
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.broadcasts")


INVALID_IN_PROOF = 20


INVALID_EXAMPLES_IN_ERROR = 5


INVALID_LOGGED = 5


# How far ahead ``send_at`` may be, and how far behind the clock it may be (a client's
# "now" that took a moment to arrive); a time within the grace is sent at once.
MAX_SCHEDULE_AHEAD = timedelta(days=90)
SCHEDULE_GRACE = timedelta(seconds=5)


# Lists longer than this are normalized chunk by chunk while earlier chunks are inserted.
STREAM_CHUNK = 10_000


async def create_broadcast(
    ctx: AppContext,
    tenant: TenantContext,
    body: BroadcastCreate,
    idempotency_key_header: str | None,
) -> CreateResult:
    """Accept a broadcast and return the proof of what was queued (or an earlier twin)."""
    _check_send_at(ctx, body)
    template = message_template(body.message)
    if not body.recipients:
        raise NoRecipients(
            "No recipients were given",
            details={"field": "recipients", "received_count": 0, "received": []},
        )
    if len(body.recipients) > ctx.settings.max_recipients:
        raise TooManyRecipients(
            f"A broadcast takes at most {ctx.settings.max_recipients} recipients",
            details={"received_count": len(body.recipients), "max": ctx.settings.max_recipients},
        )
    async with ctx.database.transaction() as session:
        wa_session = await resolve_session(session, tenant, body.session_id)
    if body.template is not None and not plugin_for(wa_session.provider).templates:
        raise ValidationFailed(
            f"template: the {wa_session.provider} provider has no message templates; "
            "send the text alone",
            details={"field": "template", "provider": wa_session.provider},
        )

    client_key = None
    if idempotency_key_header is not None:
        client_key, replay = await claim_client_key(
            ctx, tenant, wa_session, body, idempotency_key_header
        )
        if replay is not None:
            return replay
    try:
        return await _create_unclaimed(ctx, tenant, wa_session, body, template, client_key)
    except PersonalMessageFailed as exc:
        if client_key is not None:
            await release_client_key(ctx, tenant, client_key)
        raise ValidationFailed(
            f"message: cannot be made for {exc.phone}: {exc.reason}",
            details={"field": "message", "phone": exc.phone, "reason": exc.reason},
        ) from exc
    except BaseException:
        if client_key is not None:
            await release_client_key(ctx, tenant, client_key)
        raise


def message_template(message: str) -> MessageTemplate:
    """The message compiled as a personal template; a syntax error is the client's 422."""
    try:
        return compiled(message)
    except InvalidTemplate as exc:
        where = "" if exc.line is None else f" (line {exc.line})"
        raise ValidationFailed(
            f"message: {exc.reason}{where}",
            details={"field": "message", "line": exc.line, "reason": exc.reason},
        ) from exc


async def _create_unclaimed(
    ctx: AppContext,
    tenant: TenantContext,
    wa_session: SessionInfo,
    body: BroadcastCreate,
    template: MessageTemplate,
    client_key: ClientKey | None,
) -> CreateResult:
    recipients = body.recipients
    region = tenant.default_region
    dedupe_by_content = client_key is None and not body.allow_duplicate
    # Normalize everything up front when the list is small, or when an earlier
    # broadcast with this message might be a twin that must be found before
    # anything is stored. Otherwise normalization streams into the inserts.
    prepared: tuple[RecipientPreparer, list[ValidRecipient]] | None = None
    if len(recipients) <= STREAM_CHUNK or (
        dedupe_by_content and await _recent_same_message(ctx, tenant, wa_session, body.message)
    ):
        prepared = await asyncio.to_thread(
            prepare_recipients, recipients, region, template, MAX_MESSAGE_CHARS
        )
        _require_valid(prepared[0], tenant, wa_session)
        _require_variables(prepared[0], body)
        if dedupe_by_content:
            existing = await _find_twin(
                ctx, tenant, _fingerprint(prepared[0], tenant, wa_session, body)
            )
            if existing is not None:
                return existing

    connection_check = await check_connection(ctx, wa_session)

    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        repo = BroadcastRepository(session)
        await repo.lock_content(
            idempotency.lock_id(
                idempotency.message_fingerprint(
                    tenant.tenant_id, wa_session.session_id, body.message
                )
            )
        )
        if dedupe_by_content:
            if prepared is None and await repo.has_recent_same_message(
                tenant.tenant_id, wa_session.session_id, body.message, _window_start(ctx)
            ):
                prepared = await asyncio.to_thread(
                    prepare_recipients, recipients, region, template, MAX_MESSAGE_CHARS
                )
                _require_valid(prepared[0], tenant, wa_session)
                _require_variables(prepared[0], body)
            if prepared is not None:
                fingerprint = _fingerprint(prepared[0], tenant, wa_session, body)
                twin = await _find_twin_in(repo, ctx, tenant, fingerprint)
                if twin is not None:
                    return await replay(repo, twin, http_status=200)
        broadcast = await repo.add_broadcast(
            WhatsAppBroadcast(
                tenant_id=tenant.tenant_id,
                session_id=wa_session.session_id,
                status=BroadcastStatus.ACCEPTED.value,
                message=body.message,
                template=None if body.template is None else body.template.model_dump(),
                quiet_hours=body.quiet_hours,
                quiet_hours_zone=body.quiet_hours_zone,
                connection_check=connection_check,
                total_recipients=0,
                invalid_recipients=[],
                created_at=now,
                updated_at=now,
            )
        )
        # Read once the broadcast row is in: an opt-out being written now waits for this
        # transaction, or was committed before this read (``OptOutRepository.lock_tenant``).
        opted_out = await OptOutRepository(session).phones(tenant.tenant_id)
        if prepared is None:
            preparer = await _stream_recipients(
                repo,
                broadcast,
                recipients,
                RecipientPreparer(region, template, MAX_MESSAGE_CHARS, opted_out),
                now,
            )
            _require_some_not_opted_out(preparer)
            _require_valid(preparer, tenant, wa_session)
            # Known only once every recipient is rendered: refusing now rolls back the rows.
            _require_variables(preparer, body)
        else:
            preparer, valid = prepared
            valid = preparer.apply_opt_outs(valid, opted_out)
            _require_some_not_opted_out(preparer)
            await repo.add_recipients(broadcast, valid, now)
        broadcast.idempotency_key = idempotency.content_key(
            _fingerprint(preparer, tenant, wa_session, body),
            idempotency.time_bucket(now, ctx.settings.idempotency_bucket_s),
        )
        invalid_sample = [
            {"input": r.input, "reason": r.reason} for r in preparer.invalid[:INVALID_IN_PROOF]
        ]
        broadcast.total_recipients = broadcast.queued_count = preparer.valid_count
        broadcast.invalid_recipients_count = len(preparer.invalid)
        broadcast.duplicates_removed = preparer.duplicates_removed
        broadcast.invalid_recipients = invalid_sample
        broadcast.opted_out_count = preparer.opted_out_count
        broadcast.opted_out = preparer.first_opted_out or None
        missing = preparer.missing.report()
        broadcast.missing_variables = missing or None
        # With a send_at it waits as scheduled; the dispatcher queues it when it is due.
        status = BroadcastStatus.QUEUED if body.send_at is None else BroadcastStatus.SCHEDULED
        broadcast.send_at = body.send_at
        ensure_transition(BroadcastStatus.ACCEPTED, status)
        await repo.set_status(broadcast, status, now)
        await Outbox(session).broadcasts_changed([broadcast.id], now)
        accepted = BroadcastAccepted(
            broadcast_id=broadcast.id,
            job_id=job_id(broadcast.id),
            status=status,
            session_id=wa_session.session_id,
            total_recipients=preparer.valid_count,
            queued_count=preparer.valid_count,
            sent_count=0,
            invalid_recipients_count=len(preparer.invalid),
            invalid_recipients=[InvalidRecipient(**r) for r in invalid_sample],
            duplicates_removed=preparer.duplicates_removed,
            opted_out_count=preparer.opted_out_count,
            opted_out=preparer.first_opted_out,
            missing_variables=[MissingVariable(**m) for m in missing],
            items=[
                RecipientItem(
                    phone=r.phone,
                    lead_id=r.lead_id,
                    status=RecipientStatus.QUEUED,
                    message_preview=message_preview(r.message or body.message),
                )
                for r in preparer.first_valid[:ITEMS_IN_PROOF]
            ],
            idempotent=False,
            connection_check=connection_check,
            send_at=body.send_at,
        )
        if client_key is not None:
            await IdempotencyRepository(session).complete(
                tenant_id=tenant.tenant_id,
                key=client_key.key,
                response_status=202,
                response_body=accepted.model_dump(mode="json"),
                broadcast_id=broadcast.id,
            )
    log.info(
        f"{BROADCAST_TAG} created",
        broadcast_id=broadcast.id,
        tenant_id=tenant.tenant_id,
        session_id=wa_session.session_id,
        queued_count=accepted.queued_count,
        invalid_recipients_count=accepted.invalid_recipients_count,
        duplicates_removed=accepted.duplicates_removed,
        opted_out_count=accepted.opted_out_count,
        missing_variables={m.variable: m.count for m in accepted.missing_variables},
        connection_check=connection_check,
        status=accepted.status.value,
        send_at=None if body.send_at is None else body.send_at.isoformat(),
        first_invalid=_masked_examples(preparer),
    )
    return CreateResult(202, accepted)


def _check_send_at(ctx: AppContext, body: BroadcastCreate) -> None:
    """A ``send_at`` (with an offset: the schema refuses a naive one) must be from now
    (less ``SCHEDULE_GRACE``) to ``MAX_SCHEDULE_AHEAD`` ahead, by the app's clock."""
    if body.send_at is None:
        return
    now = ctx.clock.now()
    if body.send_at < now - SCHEDULE_GRACE:
        raise ValidationFailed(
            "send_at: must not be in the past",
            details={"field": "send_at", "now": now.isoformat()},
        )
    if body.send_at > now + MAX_SCHEDULE_AHEAD:
        raise ValidationFailed(
            f"send_at: must be at most {MAX_SCHEDULE_AHEAD.days} days ahead",
            details={"field": "send_at", "now": now.isoformat()},
        )


async def _stream_recipients(
    repo: BroadcastRepository,
    broadcast: WhatsAppBroadcast,
    recipients: Sequence[str | RecipientLike],
    preparer: RecipientPreparer,
    now: datetime,
) -> RecipientPreparer:
    """Normalize chunk k+1 in a thread while chunk k is being inserted.

    Normalization is Python CPU and the insert is mostly database CPU, so on
    PostgreSQL the two overlap on separate cores instead of adding up.
    """
    chunks = [recipients[i : i + STREAM_CHUNK] for i in range(0, len(recipients), STREAM_CHUNK)]
    pending = asyncio.ensure_future(asyncio.to_thread(preparer.add, chunks[0]))
    try:
        for index in range(len(chunks)):
            valid = await pending
            if index + 1 < len(chunks):
                pending = asyncio.ensure_future(asyncio.to_thread(preparer.add, chunks[index + 1]))
            if valid:
                await repo.add_recipients(broadcast, valid, now)
    finally:
        # Never leave a normalization running behind a failed insert.
        await asyncio.wait([pending])
    return preparer


def _fingerprint(
    preparer: RecipientPreparer,
    tenant: TenantContext,
    wa_session: SessionInfo,
    body: BroadcastCreate,
) -> str:
    content = body.message
    if body.template is not None:
        # The same text with another template (or none) is another broadcast.
        template = json.dumps(body.template.model_dump(), sort_keys=True, ensure_ascii=False)
        content = f"{content}\x00template:{template}"
    if body.send_at is not None:
        # The same message at another time is another broadcast.
        content = f"{content}\x00send_at:{body.send_at.isoformat()}"
    if body.quiet_hours is not None or body.quiet_hours_zone is not None:
        # Other quiet hours send the same message at other times: another broadcast.
        content = f"{content}\x00quiet:{body.quiet_hours}/{body.quiet_hours_zone}"
    if preparer.template is not None:
        # A personal message is the same broadcast only if everyone's text is the same.
        texts = hashlib.sha256()
        for phone, text in preparer.sorted_texts():
            texts.update(f"{phone}\x00{text}\x00".encode())
        content = f"{content}\x00texts:{texts.hexdigest()}"
    return idempotency.content_fingerprint(
        tenant.tenant_id, wa_session.session_id, content, preparer.sorted_phones()
    )


def _window_start(ctx: AppContext) -> datetime:
    return ctx.clock.now() - timedelta(seconds=ctx.settings.idempotency_window_s)


async def _recent_same_message(
    ctx: AppContext, tenant: TenantContext, wa_session: SessionInfo, message: str
) -> bool:
    async with ctx.database.transaction() as session:
        return await BroadcastRepository(session).has_recent_same_message(
            tenant.tenant_id, wa_session.session_id, message, _window_start(ctx)
        )


def _require_valid(
    preparer: RecipientPreparer, tenant: TenantContext, wa_session: SessionInfo
) -> None:
    if preparer.valid_count:
        return
    _log_rejected(tenant, wa_session, preparer)
    raise NoValidRecipients(
        "None of the recipients is a valid phone number",
        details={
            "invalid_count": len(preparer.invalid),
            "reasons": preparer.reason_counts(),
            "examples": [
                {"input": r.input, "reason": r.reason}
                for r in preparer.invalid[:INVALID_EXAMPLES_IN_ERROR]
            ],
        },
    )


def _require_some_not_opted_out(preparer: RecipientPreparer) -> None:
    """Every valid number opted out: nothing to send, nothing stored (the transaction
    rolls back)."""
    if preparer.valid_count or not preparer.opted_out_count:
        return
    raise AllRecipientsOptedOut(
        "Every valid recipient has opted out; nothing was queued",
        details={
            "opted_out_count": preparer.opted_out_count,
            "opted_out": preparer.first_opted_out,
            "invalid_count": len(preparer.invalid),
        },
    )


def _require_variables(preparer: RecipientPreparer, body: BroadcastCreate) -> None:
    if not body.strict_variables or not preparer.missing.counts:
        return
    missing = preparer.missing.report()
    names = ", ".join(m["variable"] for m in missing)
    raise MissingVariables(
        f"message: some recipients lack {names}; nothing was stored",
        details={"field": "message", "missing_variables": missing},
    )


def _masked_examples(preparer: RecipientPreparer) -> list[dict[str, str]]:
    return [
        {"input": mask_phone(r.input[:32]), "reason": r.reason}
        for r in preparer.invalid[:INVALID_LOGGED]
    ]


def _log_rejected(
    tenant: TenantContext, wa_session: SessionInfo, preparer: RecipientPreparer
) -> None:
    log.warning(
        f"{BROADCAST_TAG} rejected",
        broadcast_id=None,
        tenant_id=tenant.tenant_id,
        session_id=wa_session.session_id,
        error_code=NoValidRecipients.error_code,
        queued_count=0,
        invalid_recipients_count=len(preparer.invalid),
        duplicates_removed=preparer.duplicates_removed,
        first_invalid=_masked_examples(preparer),
    )


async def _find_twin(
    ctx: AppContext, tenant: TenantContext, fingerprint: str
) -> CreateResult | None:
    async with ctx.database.transaction() as session:
        repo = BroadcastRepository(session)
        twin = await _find_twin_in(repo, ctx, tenant, fingerprint)
        return None if twin is None else await replay(repo, twin, http_status=200)


async def _find_twin_in(
    repo: BroadcastRepository, ctx: AppContext, tenant: TenantContext, fingerprint: str
) -> WhatsAppBroadcast | None:
    keys = idempotency.candidate_content_keys(
        fingerprint,
        ctx.clock.now(),
        ctx.settings.idempotency_bucket_s,
        ctx.settings.idempotency_window_s,
    )
    return await repo.find_by_content_keys(tenant.tenant_id, keys, _window_start(ctx))
