"""What each dashboard page shows, gathered from the services the API uses.

Route handlers call one function here and render its result; nothing here
writes SQL or knows about HTML. Creating, cancelling and resuming go through the
same service functions as ``POST /api/whatsapp/broadcasts`` and its routes,
so the dashboard gets the same validation, idempotency and connection check.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from wabroadcast.broadcasts import control, create, reads
from wabroadcast.broadcasts.schemas import (
    MAX_MESSAGE_CHARS,
    BroadcastCreate,
    BroadcastOut,
    RecipientIn,
    RecipientOut,
)
from wabroadcast.context import AppContext
from wabroadcast.domain.errors import IdempotencyKeyInUse
from wabroadcast.domain.recipients import RejectedRecipient, prepare_recipients
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus
from wabroadcast.sessions import service as sessions
from wabroadcast.sessions.schemas import SessionStatusOut
from wabroadcast.tenants.service import TenantContext
from wabroadcast.web import metrics_source
from wabroadcast.web.chart import Chart, minute_chart
from wabroadcast.web.forms import Draft, DraftProblem

BROADCASTS_PER_PAGE = 20
RECIPIENTS_PER_PAGE = 50
EXPORT_PAGE = 500
PREVIEW_EXAMPLES = 10
# A second submission of the same form waits this long for the first to finish.
KEY_IN_USE_WAIT_S = 0.25
KEY_IN_USE_TRIES = 60


@dataclass(frozen=True, slots=True)
class Overview:
    connection: SessionStatusOut
    metrics: metrics_source.TileMetrics
    chart: Chart
    broadcasts: list[BroadcastOut]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class BroadcastDetail:
    connection: SessionStatusOut
    broadcast: BroadcastOut
    recipients: list[RecipientOut]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Preview:
    valid_count: int
    invalid_count: int
    duplicates_removed: int
    reasons: list[tuple[str, int]]
    examples: list[RejectedRecipient]
    too_many: bool
    max_recipients: int

    @property
    def empty(self) -> bool:
        return self.valid_count + self.invalid_count + self.duplicates_removed == 0


@dataclass(frozen=True, slots=True)
class Submitted:
    broadcast_id: int
    replayed: bool


async def connection(ctx: AppContext, tenant: TenantContext) -> SessionStatusOut:
    """The default session's state, for the header and the banner."""
    return await sessions.session_status(ctx, tenant, None)


async def overview(
    ctx: AppContext,
    tenant: TenantContext,
    *,
    status: BroadcastStatus | None,
    cursor: str | None,
) -> Overview:
    broadcasts, next_cursor = await reads.list_broadcasts(
        ctx, tenant, status=status, cursor=cursor, limit=BROADCASTS_PER_PAGE
    )
    return Overview(
        connection=await connection(ctx, tenant),
        metrics=await metrics_source.tenant_metrics(ctx, tenant),
        chart=minute_chart(await metrics_source.sends_per_minute(ctx, tenant)),
        broadcasts=broadcasts,
        next_cursor=next_cursor,
    )


async def broadcast_detail(
    ctx: AppContext,
    tenant: TenantContext,
    broadcast_id: int,
    *,
    status: RecipientStatus | None,
    cursor: str | None,
) -> BroadcastDetail:
    broadcast = await reads.get_broadcast(ctx, tenant, broadcast_id)
    recipients, next_cursor = await reads.list_recipients(
        ctx, tenant, broadcast_id, status=status, cursor=cursor, limit=RECIPIENTS_PER_PAGE
    )
    return BroadcastDetail(
        connection=await connection(ctx, tenant),
        broadcast=broadcast,
        recipients=recipients,
        next_cursor=next_cursor,
    )


async def preview(ctx: AppContext, tenant: TenantContext, draft: Draft) -> Preview:
    """What sending this draft would queue: valid, invalid (and why), duplicates."""
    inputs = draft.recipient_inputs()
    preparer, _ = await asyncio.to_thread(prepare_recipients, inputs, tenant.default_region)
    return Preview(
        valid_count=preparer.valid_count,
        invalid_count=len(preparer.invalid),
        duplicates_removed=preparer.duplicates_removed,
        reasons=sorted(preparer.reason_counts().items(), key=lambda item: -item[1]),
        examples=preparer.invalid[:PREVIEW_EXAMPLES],
        too_many=len(inputs) > ctx.settings.max_recipients,
        max_recipients=ctx.settings.max_recipients,
    )


def broadcast_body(draft: Draft) -> BroadcastCreate:
    """The API's request body for this draft; what a person must fix is a ``DraftProblem``."""
    recipients: list[str | RecipientIn] = []
    for index, recipient in enumerate(draft.recipient_inputs()):
        if recipient.lead_id is None and recipient.name is None:
            recipients.append(recipient.phone)
            continue
        try:
            recipients.append(RecipientIn.model_validate(recipient._asdict()))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise DraftProblem(
                "error.recipient_invalid", detail=f"#{index + 1} {field}: {error['msg']}"
            ) from exc
    try:
        return BroadcastCreate(message=draft.message, recipients=recipients)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "string_too_long":
            raise DraftProblem("error.message_too_long", max=MAX_MESSAGE_CHARS) from exc
        where = [str(part) for part in error["loc"]]
        if where and where[0] == "recipients":
            # A recipient that cannot be stored (a NUL, a broken character).
            raise DraftProblem(
                "error.recipient_invalid", detail=f"{'.'.join(where)}: {error['msg']}"
            ) from exc
        raise DraftProblem("error.message_required") from exc


async def submit(ctx: AppContext, tenant: TenantContext, draft: Draft) -> Submitted:
    """Create the broadcast through the API's own path, under the form's Idempotency-Key.

    A second submission of the same form (a double click, a resent POST) gets
    the first one's broadcast; if it arrives while the first is still being
    stored, it waits for it instead of failing.
    """
    body = broadcast_body(draft)
    for _ in range(KEY_IN_USE_TRIES - 1):
        try:
            return await _create(ctx, tenant, body, draft.idempotency_key)
        except IdempotencyKeyInUse:
            await asyncio.sleep(KEY_IN_USE_WAIT_S)
    return await _create(ctx, tenant, body, draft.idempotency_key)


async def _create(
    ctx: AppContext, tenant: TenantContext, body: BroadcastCreate, key: str | None
) -> Submitted:
    result = await create.create_broadcast(ctx, tenant, body, key)
    return Submitted(result.body.broadcast_id, replayed=result.body.idempotent)


async def cancel(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    return await control.cancel_broadcast(ctx, tenant, broadcast_id)


async def resume(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    return await control.resume_broadcast(ctx, tenant, broadcast_id)


CSV_COLUMNS = (
    "phone",
    "lead_id",
    "name",
    "status",
    "attempts",
    "error_code",
    "error_message",
    "queued_at",
    "failed_at",
)
# A cell starting with one of these is a formula to a spreadsheet.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_chunk(rows: Sequence[RecipientOut], *, header: bool) -> str:
    buffer = io.StringIO()
    # Every cell quoted: a spreadsheet that splits on ";" (or another delimiter) could
    # otherwise find a formula inside an unquoted cell such as ``a;=1+1;b``.
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    if header:
        writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.phone,  # ours, always E.164: its leading + is not a formula
                _cell(r.lead_id),
                _cell(r.name),
                r.status.value,
                r.attempts,
                _cell(r.error_code),
                _cell(r.error_message),
                _cell(r.queued_at),
                _cell(r.failed_at),
            ]
        )
    return buffer.getvalue()


async def failed_recipients_csv(
    ctx: AppContext, tenant: TenantContext, broadcast_id: int
) -> AsyncIterator[str]:
    """Every failed recipient as CSV, page by page (each its own short transaction).

    The first page is read before this returns, so an unknown broadcast is a
    404 before any byte of the file is sent.
    """
    failed = RecipientStatus.FAILED
    first, cursor = await reads.list_recipients(
        ctx, tenant, broadcast_id, status=failed, cursor=None, limit=EXPORT_PAGE
    )

    async def lines() -> AsyncIterator[str]:
        # A byte-order mark, so spreadsheets read Hebrew names as UTF-8.
        yield "\ufeff" + _csv_chunk(first, header=True)
        next_cursor = cursor
        while next_cursor is not None:
            rows, next_cursor = await reads.list_recipients(
                ctx, tenant, broadcast_id, status=failed, cursor=next_cursor, limit=EXPORT_PAGE
            )
            yield _csv_chunk(rows, header=False)

    return lines()
