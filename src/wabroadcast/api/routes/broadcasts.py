"""Broadcast routes: create with proof, read one, list, list recipients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from wabroadcast.api.deps import BroadcastId, Ctx, CurrentTenant
from wabroadcast.api.routes import tenant_errors
from wabroadcast.api.schemas import Page
from wabroadcast.broadcasts import control, create, reads
from wabroadcast.broadcasts.estimating import estimated
from wabroadcast.broadcasts.schemas import (
    BroadcastAccepted,
    BroadcastCreate,
    BroadcastOut,
    RecipientOut,
    RetryFailedIn,
    RetryFailedOut,
)
from wabroadcast.domain.errors import (
    BroadcastFinished,
    BroadcastNotFound,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    NoRecipients,
    NoValidRecipients,
    PayloadTooLarge,
    SessionNotFound,
    TooManyRecipients,
    WhatsAppNotConnected,
)
from wabroadcast.domain.idempotency import IDEMPOTENCY_HEADER_PATTERN
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus

router = APIRouter(prefix="/api/whatsapp/broadcasts", tags=["broadcasts"])

# ``multipart/form-data``: the recipients as a CSV file (see the README's "CSV files").
CSV_UPLOAD_BODY = {
    "schema": {
        "type": "object",
        "required": ["file", "message"],
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The recipients: a CSV file (a phone column, optional name, "
                "lead_id); `,` `;` or tab, UTF-8 or UTF-16.",
            },
            "message": {"type": "string", "description": "The text to send."},
            "session_id": {"type": "string", "description": "Default: the tenant's default."},
        },
    }
}

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the last page.")]


@router.post(
    "",
    status_code=202,
    response_model=BroadcastAccepted,
    responses={
        200: {"model": BroadcastAccepted, "description": "An identical broadcast already exists"},
        **tenant_errors(
            NoRecipients,
            NoValidRecipients,
            SessionNotFound,
            IdempotencyKeyInUse,
            TooManyRecipients,
            PayloadTooLarge,
            IdempotencyKeyMismatch,
            WhatsAppNotConnected,
        ),
    },
    summary="Queue a broadcast and get proof of what was queued",
    # The multipart variant is served by ``broadcast_uploads`` (same path and method);
    # its body is documented here, on the one operation OpenAPI allows.
    openapi_extra={"requestBody": {"content": {"multipart/form-data": CSV_UPLOAD_BODY}}},
)
async def create_broadcast(
    body: BroadcastCreate,
    ctx: Ctx,
    tenant: CurrentTenant,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_HEADER_PATTERN,
            description=(
                "Client key, 1-255 visible ASCII characters, bare or in double quotes; "
                "the same key with the same body replays the first response (kept 24 h)."
            ),
        ),
    ] = None,
) -> BroadcastAccepted:
    result = await create.create_broadcast(ctx, tenant, body, idempotency_key)
    response.status_code = result.http_status
    if result.body.idempotent:
        response.headers["Idempotent-Replayed"] = "true"
    return result.body


@router.get(
    "",
    response_model=Page[BroadcastOut],
    responses=tenant_errors(),
    summary="List broadcasts, newest first",
)
async def list_broadcasts(
    ctx: Ctx,
    tenant: CurrentTenant,
    status: BroadcastStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[BroadcastOut]:
    items, next_cursor = await reads.list_broadcasts(
        ctx, tenant, status=status, cursor=cursor, limit=limit
    )
    return Page[BroadcastOut](items=items, next_cursor=next_cursor)


@router.get(
    "/{broadcast_id}",
    response_model=BroadcastOut,
    responses=tenant_errors(BroadcastNotFound),
    summary="A broadcast's status and counts",
)
async def get_broadcast(broadcast_id: BroadcastId, ctx: Ctx, tenant: CurrentTenant) -> BroadcastOut:
    return await reads.get_broadcast(ctx, tenant, broadcast_id)


@router.post(
    "/{broadcast_id}/cancel",
    response_model=BroadcastOut,
    responses={
        **tenant_errors(BroadcastNotFound, BroadcastFinished),
    },
    summary="Cancel: queued recipients are not sent, sends in flight finish",
    description=(
        "Queued recipients become `cancelled` at once. Recipients a worker had already "
        "claimed (status `sending`, not yet handed to WhatsApp) are cancelled by that worker "
        "within about `WABROADCAST_WORKER_POLL_S`; a send already with WhatsApp finishes "
        "and its outcome is recorded."
    ),
)
async def cancel_broadcast(
    broadcast_id: BroadcastId, ctx: Ctx, tenant: CurrentTenant
) -> BroadcastOut:
    return await estimated(
        ctx, tenant.tenant_id, await control.cancel_broadcast(ctx, tenant, broadcast_id)
    )


@router.post(
    "/{broadcast_id}/resume",
    response_model=BroadcastOut,
    responses={
        **tenant_errors(BroadcastNotFound, BroadcastFinished),
    },
    summary="Resume a paused broadcast",
    description=(
        "A broadcast paused by an account-level error (restricted, spam-flagged) goes back "
        "to `running` (`queued` if nothing was sent yet) and its `status_reason` is cleared; "
        "workers send its held recipients on their next pass. If WhatsApp still refuses the "
        "account, it is paused again at the first send. A broadcast that is not paused but "
        "still sending is returned unchanged."
    ),
)
async def resume_broadcast(
    broadcast_id: BroadcastId, ctx: Ctx, tenant: CurrentTenant
) -> BroadcastOut:
    return await estimated(
        ctx, tenant.tenant_id, await control.resume_broadcast(ctx, tenant, broadcast_id)
    )


@router.post(
    "/{broadcast_id}/pause",
    response_model=BroadcastOut,
    responses={
        **tenant_errors(BroadcastNotFound, BroadcastFinished),
    },
    summary="Pause: nothing new starts, sends in flight finish",
    description=(
        "The broadcast becomes `paused` with a `status_reason` saying it was paused by hand; "
        "workers claim none of its recipients until it is resumed. Recipients already "
        "claimed (`sending`) are sent and recorded. Pausing a paused broadcast returns it "
        "unchanged; `POST .../resume` sends the rest."
    ),
)
async def pause_broadcast(
    broadcast_id: BroadcastId, ctx: Ctx, tenant: CurrentTenant
) -> BroadcastOut:
    return await estimated(
        ctx, tenant.tenant_id, await control.pause_broadcast(ctx, tenant, broadcast_id)
    )


@router.post(
    "/{broadcast_id}/retry-failed",
    response_model=RetryFailedOut,
    responses={
        **tenant_errors(BroadcastNotFound, BroadcastFinished),
    },
    summary="Send failed recipients again whose failure may pass",
    description=(
        "Failed recipients whose error may pass (not `NOT_ON_WHATSAPP`, `INVALID_NUMBER` or "
        "another final code; `UNKNOWN_OUTCOME` only when named) are queued again with a new "
        "client message id; `error_codes` narrows them. A finished broadcast that gets any "
        "back is `running` again and finishes again from its counts; a paused one stays "
        "paused. A cancelled broadcast is a 409."
    ),
)
async def retry_failed(
    broadcast_id: BroadcastId,
    ctx: Ctx,
    tenant: CurrentTenant,
    body: RetryFailedIn | None = None,
) -> RetryFailedOut:
    codes = body.error_codes if body is not None else None
    return await control.retry_failed(ctx, tenant, broadcast_id, codes)


@router.get(
    "/{broadcast_id}/recipients",
    response_model=Page[RecipientOut],
    responses=tenant_errors(BroadcastNotFound),
    summary="What happened to each recipient",
)
async def list_recipients(
    broadcast_id: BroadcastId,
    ctx: Ctx,
    tenant: CurrentTenant,
    status: RecipientStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RecipientOut]:
    items, next_cursor = await reads.list_recipients(
        ctx, tenant, broadcast_id, status=status, cursor=cursor, limit=limit
    )
    return Page[RecipientOut](items=items, next_cursor=next_cursor)
