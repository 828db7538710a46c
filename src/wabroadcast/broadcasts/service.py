"""Broadcast use cases: accept (validate, dedupe, check, store), read and list.

``create_broadcast`` spans several short transactions on purpose: a client
``Idempotency-Key`` is claimed and committed first (so a concurrent twin sees
it), the provider's connection check runs outside any transaction (it may take
5 s), and the broadcast with all its recipients is written in one final
transaction so no error path leaves a row behind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from wabroadcast.broadcasts.repository import BroadcastRepository, IdempotencyRepository
from wabroadcast.broadcasts.schemas import (
    BroadcastAccepted,
    BroadcastCreate,
    BroadcastOut,
    InvalidRecipient,
    RecipientItem,
    RecipientOut,
)
from wabroadcast.context import AppContext
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain import idempotency
from wabroadcast.domain.errors import (
    BroadcastFinished,
    BroadcastNotFound,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    NoRecipients,
    NoValidRecipients,
    TooManyRecipients,
    ValidationFailed,
    WhatsAppNotConnected,
)
from wabroadcast.domain.phones import mask_phone
from wabroadcast.domain.recipients import (
    RecipientLike,
    RecipientPreparer,
    ValidRecipient,
    prepare_recipients,
)
from wabroadcast.domain.status import (
    FINAL_BROADCAST_STATUSES,
    BroadcastStatus,
    RecipientStatus,
    can_transition,
    ensure_transition,
)
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.config import SessionInfo
from wabroadcast.sessions.service import resolve_session
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.broadcasts")

ITEMS_IN_PROOF = 100
INVALID_IN_PROOF = 20
INVALID_EXAMPLES_IN_ERROR = 5
INVALID_LOGGED = 5
# Lists longer than this are normalized chunk by chunk while earlier chunks are inserted.
STREAM_CHUNK = 10_000
NOT_CONNECTED_HE = "WhatsApp לא מחובר. יש להתחבר תחילה"
NOT_CONNECTED_EN = "WhatsApp is not connected. Connect first."

ConnectionCheck = Literal["connected", "unknown"]


@dataclass(frozen=True, slots=True)
class CreateResult:
    http_status: int
    body: BroadcastAccepted


@dataclass(frozen=True, slots=True)
class _ClientKey:
    key: str
    request_hash: str
    claimed_at: datetime


def job_id(broadcast_id: int) -> str:
    return f"broadcast_{broadcast_id}"


# --- create ---------------------------------------------------------------


async def create_broadcast(
    ctx: AppContext,
    tenant: TenantContext,
    body: BroadcastCreate,
    idempotency_key_header: str | None,
) -> CreateResult:
    """Accept a broadcast and return the proof of what was queued (or an earlier twin)."""
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
        client_key, replay = await _claim_client_key(
            ctx, tenant, wa_session, body, idempotency_key_header
        )
        if replay is not None:
            return replay
    try:
        return await _create_unclaimed(ctx, tenant, wa_session, body, client_key)
    except BaseException:
        if client_key is not None:
            await _release_client_key(ctx, tenant, client_key)
        raise


async def _create_unclaimed(
    ctx: AppContext,
    tenant: TenantContext,
    wa_session: SessionInfo,
    body: BroadcastCreate,
    client_key: _ClientKey | None,
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
        prepared = await asyncio.to_thread(prepare_recipients, recipients, region)
        _require_valid(prepared[0], tenant, wa_session)
        if dedupe_by_content:
            existing = await _find_twin(
                ctx, tenant, _fingerprint(prepared[0], tenant, wa_session, body)
            )
            if existing is not None:
                return existing

    connection_check = await _check_connection(ctx, wa_session)

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
                prepared = await asyncio.to_thread(prepare_recipients, recipients, region)
                _require_valid(prepared[0], tenant, wa_session)
            if prepared is not None:
                fingerprint = _fingerprint(prepared[0], tenant, wa_session, body)
                twin = await _find_twin_in(repo, ctx, tenant, fingerprint)
                if twin is not None:
                    return await _replay(repo, twin, http_status=200)
        broadcast = await repo.add_broadcast(
            WhatsAppBroadcast(
                tenant_id=tenant.tenant_id,
                session_id=wa_session.session_id,
                status=BroadcastStatus.ACCEPTED.value,
                message=body.message,
                template=None if body.template is None else body.template.model_dump(),
                connection_check=connection_check,
                total_recipients=0,
                invalid_recipients=[],
                created_at=now,
                updated_at=now,
            )
        )
        if prepared is None:
            preparer = await _stream_recipients(repo, broadcast, recipients, region, now)
            _require_valid(preparer, tenant, wa_session)
        else:
            preparer, valid = prepared
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
        ensure_transition(BroadcastStatus.ACCEPTED, BroadcastStatus.QUEUED)
        await repo.set_status(broadcast, BroadcastStatus.QUEUED, now)
        accepted = BroadcastAccepted(
            broadcast_id=broadcast.id,
            job_id=job_id(broadcast.id),
            status=BroadcastStatus.QUEUED,
            session_id=wa_session.session_id,
            total_recipients=preparer.valid_count,
            queued_count=preparer.valid_count,
            sent_count=0,
            invalid_recipients_count=len(preparer.invalid),
            invalid_recipients=[InvalidRecipient(**r) for r in invalid_sample],
            duplicates_removed=preparer.duplicates_removed,
            items=[
                RecipientItem(phone=r.phone, lead_id=r.lead_id, status=RecipientStatus.QUEUED)
                for r in preparer.first_valid[:ITEMS_IN_PROOF]
            ],
            idempotent=False,
            connection_check=connection_check,
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
        connection_check=connection_check,
        first_invalid=_masked_examples(preparer),
    )
    return CreateResult(202, accepted)


async def _stream_recipients(
    repo: BroadcastRepository,
    broadcast: WhatsAppBroadcast,
    recipients: Sequence[str | RecipientLike],
    region: str,
    now: datetime,
) -> RecipientPreparer:
    """Normalize chunk k+1 in a thread while chunk k is being inserted.

    Normalization is Python CPU and the insert is mostly database CPU, so on
    PostgreSQL the two overlap on separate cores instead of adding up.
    """
    preparer = RecipientPreparer(region)
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


async def _check_connection(ctx: AppContext, wa_session: SessionInfo) -> ConnectionCheck:
    """Refuse when the provider says disconnected; go on (fail-open) when it cannot say."""
    provider = ctx.providers.for_kind(wa_session.provider)
    timeout = ctx.settings.connection_check_timeout_s
    try:
        status = await asyncio.wait_for(
            provider.connection_status(wa_session.ref(ctx.secrets)), timeout
        )
    except (SecretKeyMissing, SecretsUnreadable) as exc:
        # The provider cannot be called at all: as good as disconnected.
        log.error(
            f"{BROADCAST_TAG} rejected: the session's secrets cannot be read",
            broadcast_id=None,
            session_id=wa_session.session_id,
            error=str(exc),
        )
        raise WhatsAppNotConnected(
            NOT_CONNECTED_HE,
            details={"session_id": wa_session.session_id, "provider": wa_session.provider},
            extra={"message_en": NOT_CONNECTED_EN},
        ) from None
    except TimeoutError:
        log.warning(
            f"{BROADCAST_TAG} connection check timed out; accepting anyway",
            broadcast_id=None,
            session_id=wa_session.session_id,
            timeout_s=timeout,
        )
        return "unknown"
    except Exception as exc:
        log.warning(
            f"{BROADCAST_TAG} connection check failed; accepting anyway",
            broadcast_id=None,
            session_id=wa_session.session_id,
            error=repr(exc),
        )
        return "unknown"
    if not status.connected:
        log.warning(
            f"{BROADCAST_TAG} rejected",
            broadcast_id=None,
            session_id=wa_session.session_id,
            error_code=WhatsAppNotConnected.error_code,
            detail=status.detail,
        )
        raise WhatsAppNotConnected(
            NOT_CONNECTED_HE,
            details={"session_id": wa_session.session_id, "provider": wa_session.provider},
            extra={"message_en": NOT_CONNECTED_EN},
        )
    return "connected"


async def _find_twin(
    ctx: AppContext, tenant: TenantContext, fingerprint: str
) -> CreateResult | None:
    async with ctx.database.transaction() as session:
        repo = BroadcastRepository(session)
        twin = await _find_twin_in(repo, ctx, tenant, fingerprint)
        return None if twin is None else await _replay(repo, twin, http_status=200)


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


async def _replay(
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
        sent_count=_sent_total(broadcast),
        invalid_recipients_count=broadcast.invalid_recipients_count,
        invalid_recipients=[InvalidRecipient(**r) for r in broadcast.invalid_recipients],
        duplicates_removed=broadcast.duplicates_removed,
        items=[
            RecipientItem(phone=r.phone, lead_id=r.lead_id, status=RecipientStatus(r.status))
            for r in items
        ],
        idempotent=True,
        connection_check="connected" if broadcast.connection_check == "connected" else "unknown",
    )
    return CreateResult(http_status, body)


# --- client Idempotency-Key -------------------------------------------------


def _canonical_request(body: BroadcastCreate, wa_session: SessionInfo) -> str:
    payload = body.model_dump(mode="json")
    payload["session_id"] = wa_session.session_id
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


async def _claim_client_key(
    ctx: AppContext,
    tenant: TenantContext,
    wa_session: SessionInfo,
    body: BroadcastCreate,
    raw_key: str,
) -> tuple[_ClientKey, CreateResult | None]:
    key = idempotency.unquote_client_key(raw_key)
    if not idempotency.is_valid_client_key(key):
        raise ValidationFailed(
            "Idempotency-Key: must be 1-255 visible ASCII characters",
            details={"field": "Idempotency-Key"},
        )
    request_hash = idempotency.request_fingerprint(_canonical_request(body, wa_session))
    now = ctx.clock.now()
    expires_at = now + timedelta(seconds=ctx.settings.idempotency_key_ttl_s)
    claim = _ClientKey(key, request_hash, now)
    async with ctx.database.transaction() as session:
        repo = IdempotencyRepository(session)
        if await repo.try_claim(
            tenant_id=tenant.tenant_id,
            key=key,
            request_hash=request_hash,
            at=now,
            expires_at=expires_at,
        ):
            return claim, None
        row = await repo.get(tenant.tenant_id, key)
        if row is None:
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is being processed; retry shortly",
                details={"idempotency_key": key},
            )
        abandoned = row.state == "in_flight" and row.created_at <= now - timedelta(
            seconds=ctx.settings.idempotency_in_flight_timeout_s
        )
        if row.expires_at <= now or abandoned:
            if await repo.take_over(
                tenant_id=tenant.tenant_id,
                key=key,
                previous_created_at=row.created_at,
                request_hash=request_hash,
                at=now,
                expires_at=expires_at,
            ):
                return claim, None
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is being processed; retry shortly",
                details={"idempotency_key": key},
            )
        if row.request_hash != request_hash:
            raise IdempotencyKeyMismatch(
                "This Idempotency-Key was already used with a different request body",
                details={"idempotency_key": key},
            )
        if row.state == "in_flight" or row.response_body is None or row.response_status is None:
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is being processed; retry shortly",
                details={"idempotency_key": key},
            )
        replay = BroadcastAccepted.model_validate({**row.response_body, "idempotent": True})
        log.info(
            f"{BROADCAST_TAG} idempotent replay",
            broadcast_id=row.broadcast_id,
            tenant_id=tenant.tenant_id,
            queued_count=replay.queued_count,
            invalid_recipients_count=replay.invalid_recipients_count,
            duplicates_removed=replay.duplicates_removed,
            idempotency_key=key,
        )
        return claim, CreateResult(row.response_status, replay)


async def _release_client_key(ctx: AppContext, tenant: TenantContext, claim: _ClientKey) -> None:
    async with ctx.database.transaction() as session:
        await IdempotencyRepository(session).release(
            tenant_id=tenant.tenant_id, key=claim.key, claimed_at=claim.claimed_at
        )


# --- reads -----------------------------------------------------------------


def _sent_total(b: WhatsAppBroadcast) -> int:
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
        sent_count=_sent_total(b),
        delivered_count=b.delivered_count + b.read_count,
        read_count=b.read_count,
        failed_count=b.failed_count,
        cancelled_count=b.cancelled_count,
        invalid_recipients_count=b.invalid_recipients_count,
        duplicates_removed=b.duplicates_removed,
        created_at=b.created_at,
        queued_at=b.queued_at,
        started_at=b.started_at,
        finished_at=b.finished_at,
        updated_at=b.updated_at,
    )


def recipient_out(r: WhatsAppBroadcastRecipient) -> RecipientOut:
    return RecipientOut(
        recipient_id=r.id,
        phone=r.phone,
        lead_id=r.lead_id,
        name=r.name,
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
        updated_at=r.updated_at,
    )


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


MAX_CURSOR_ID = 2**63 - 1


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor points past; a tampered or foreign cursor is a 422, not a 500."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        prefix, _, value = text.partition(":")
        if prefix != "id" or not value.isdigit():
            raise ValueError(text)
        last_id = int(value)
        if not 1 <= last_id <= MAX_CURSOR_ID:  # ids are positive BIGINTs
            raise ValueError(text)
        return last_id
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise ValidationFailed(
            "cursor: not a cursor returned by this API", details={"field": "cursor"}
        ) from exc


def page_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor for the page after this one, or None when this page was the last."""
    return encode_cursor(ids[-1]) if len(ids) == limit and ids else None


async def get_broadcast(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    async with ctx.database.transaction() as session:
        broadcast = await BroadcastRepository(session).get(tenant.tenant_id, broadcast_id)
        if broadcast is None:
            raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": broadcast_id})
        return broadcast_out(broadcast)


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


async def list_broadcasts(
    ctx: AppContext,
    tenant: TenantContext,
    *,
    status: BroadcastStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[BroadcastOut], str | None]:
    before_id = decode_cursor(cursor)
    async with ctx.database.transaction() as session:
        rows = await BroadcastRepository(session).list_page(
            tenant.tenant_id, status=status, before_id=before_id, limit=limit
        )
        return [broadcast_out(b) for b in rows], page_cursor([b.id for b in rows], limit)


async def list_recipients(
    ctx: AppContext,
    tenant: TenantContext,
    broadcast_id: int,
    *,
    status: RecipientStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[RecipientOut], str | None]:
    after_id = decode_cursor(cursor)
    async with ctx.database.transaction() as session:
        repo = BroadcastRepository(session)
        if await repo.get(tenant.tenant_id, broadcast_id) is None:
            raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": broadcast_id})
        rows = await repo.recipients(broadcast_id, status=status, after_id=after_id, limit=limit)
        return [recipient_out(r) for r in rows], page_cursor([r.id for r in rows], limit)
