"""What each dashboard page shows, gathered from the services the API uses.

Route handlers call one function here and render its result; nothing here
writes SQL or knows about HTML. Creating, cancelling, pausing, resuming and
retrying go through the same service functions as ``POST /api/whatsapp/broadcasts``
and its routes, so the dashboard gets the same validation, idempotency and
connection check.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from wabroadcast.broadcasts import control, create, reads
from wabroadcast.broadcasts.schemas import (
    MAX_MESSAGE_CHARS,
    BroadcastCreate,
    BroadcastOut,
    InvalidRecipient,
    MissingVariable,
    RecipientIn,
    RecipientOut,
)
from wabroadcast.context import AppContext
from wabroadcast.domain.errors import IdempotencyKeyInUse, ValidationFailed
from wabroadcast.domain.failures import may_pass
from wabroadcast.domain.recipients import (
    PersonalMessageFailed,
    RejectedRecipient,
    ValidRecipient,
    prepare_recipients,
)
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus
from wabroadcast.domain.templating import MessageTemplate
from wabroadcast.sessions import service as sessions
from wabroadcast.sessions.schemas import SessionStatusOut
from wabroadcast.tenants.service import TenantContext
from wabroadcast.web import metrics_source
from wabroadcast.web.chart import Chart, minute_chart
from wabroadcast.web.forms import Draft, DraftProblem
from wabroadcast.web.rendering import bidi

BROADCASTS_PER_PAGE = 20
RECIPIENTS_PER_PAGE = 50
# Paused broadcasts looked at to tell whether WhatsApp is holding the session's sends.
PAUSED_LOOKED_AT = 20
EXPORT_PAGE = 500
PREVIEW_EXAMPLES = 10
PREVIEW_SAMPLES = 5
# A second submission of the same form waits this long for the first to finish.
KEY_IN_USE_WAIT_S = 0.25
KEY_IN_USE_TRIES = 60


@dataclass(frozen=True, slots=True)
class Overview:
    connection: SessionStatusOut
    account_hold: BroadcastOut | None
    metrics: metrics_source.TileMetrics
    chart: Chart
    broadcasts: list[BroadcastOut]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RetryChoice:
    """A failure code among a broadcast's failed recipients, and how many have it."""

    code: str
    count: int


@dataclass(frozen=True, slots=True)
class BroadcastDetail:
    connection: SessionStatusOut
    account_hold: BroadcastOut | None
    broadcast: BroadcastOut
    recipients: list[RecipientOut]
    next_cursor: str | None
    invalid_inputs: list[InvalidRecipient]
    missing_variables: list[MissingVariable]
    retry_choices: list[RetryChoice]
    retryable_count: int


@dataclass(frozen=True, slots=True)
class Preview:
    valid_count: int
    invalid_count: int
    duplicates_removed: int
    reasons: list[tuple[str, int]]
    examples: list[RejectedRecipient]
    too_many: bool
    max_recipients: int
    # A personal message: the first recipients' own texts, and the fields some lack.
    personal: bool = False
    samples: list[ValidRecipient] = field(default_factory=list)
    missing: list[MissingVariable] = field(default_factory=list)

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


async def account_hold(
    ctx: AppContext, tenant: TenantContext, session: SessionStatusOut
) -> BroadcastOut | None:
    """A broadcast of ``session`` that WhatsApp's refusal of the account paused (not one
    paused by hand): while there is one, the session is connected but not sending."""
    paused, _ = await reads.list_broadcasts(
        ctx, tenant, status=BroadcastStatus.PAUSED, cursor=None, limit=PAUSED_LOOKED_AT
    )
    return next(
        (
            b
            for b in paused
            if b.session_id == session.session_id and b.status_reason != control.PAUSED_BY_OPERATOR
        ),
        None,
    )


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
    state = await connection(ctx, tenant)
    return Overview(
        connection=state,
        account_hold=await account_hold(ctx, tenant, state),
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
    invalid_inputs, missing, failed_codes = await reads.proof_details(ctx, tenant, broadcast_id)
    # Every code that a "retry failed" naming it would send again (UNKNOWN_OUTCOME too).
    choices = [
        RetryChoice(code, count)
        for code, count in sorted(failed_codes.items(), key=lambda item: (-item[1], item[0] or ""))
        if code is not None and may_pass(code, frozenset({code}))
    ]
    state = await connection(ctx, tenant)
    return BroadcastDetail(
        connection=state,
        account_hold=await account_hold(ctx, tenant, state),
        broadcast=broadcast,
        recipients=recipients,
        next_cursor=next_cursor,
        invalid_inputs=invalid_inputs,
        missing_variables=missing,
        retry_choices=choices,
        retryable_count=sum(n for code, n in failed_codes.items() if may_pass(code)),
    )


async def preview(ctx: AppContext, tenant: TenantContext, draft: Draft) -> Preview:
    """What sending this draft would queue: valid, invalid (and why), duplicates, and for
    a personal message what the first recipients get and which fields some lack.

    The message is compiled and rendered by the same code as on creation, so the texts
    shown are the texts that would be sent.
    """
    inputs = draft.recipient_inputs()
    template = _template_of(draft) if draft.message.strip() else None
    try:
        preparer, _ = await asyncio.to_thread(
            prepare_recipients, inputs, tenant.default_region, template, MAX_MESSAGE_CHARS
        )
    except PersonalMessageFailed as exc:
        raise DraftProblem(
            "error.personal_failed", draft=draft, phone=bidi(exc.phone), detail=bidi(exc.reason)
        ) from exc
    return Preview(
        valid_count=preparer.valid_count,
        invalid_count=len(preparer.invalid),
        duplicates_removed=preparer.duplicates_removed,
        reasons=sorted(preparer.reason_counts().items(), key=lambda item: -item[1]),
        examples=preparer.invalid[:PREVIEW_EXAMPLES],
        too_many=len(inputs) > ctx.settings.max_recipients,
        max_recipients=ctx.settings.max_recipients,
        personal=template is not None and template.is_personal,
        samples=preparer.first_valid[:PREVIEW_SAMPLES],
        missing=[MissingVariable(**item) for item in preparer.missing.report()],
    )


def _template_of(draft: Draft) -> MessageTemplate:
    """The draft's message compiled as create compiles it; a mistake in it is a sentence."""
    try:
        return create.message_template(draft.message)
    except ValidationFailed as exc:
        line = exc.details.get("line")
        raise DraftProblem(
            "error.template_invalid",
            draft=draft,
            detail=bidi(exc.details.get("reason", exc.message)),
            line=line if line is not None else "?",
        ) from exc


def broadcast_body(draft: Draft) -> BroadcastCreate:
    """The API's request body for this draft; what a person must fix is a ``DraftProblem``."""
    recipients: list[str | RecipientIn] = []
    for index, recipient in enumerate(draft.recipient_inputs()):
        if recipient.lead_id is None and recipient.name is None and not recipient.variables:
            recipients.append(recipient.phone)
            continue
        try:
            given = {key: value for key, value in recipient._asdict().items() if value is not None}
            recipients.append(RecipientIn.model_validate(given))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise DraftProblem(
                "error.recipient_invalid", detail=f"#{index + 1} {field}: {error['msg']}"
            ) from exc
    try:
        return BroadcastCreate(
            message=draft.message,
            recipients=recipients,
            send_at=draft.send_at,
            quiet_hours=draft.quiet_hours or None,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["loc"] and error["loc"][0] == "quiet_hours":
            raise DraftProblem("error.quiet_hours_invalid", draft=draft) from exc
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
    try:
        for _ in range(KEY_IN_USE_TRIES - 1):
            try:
                return await _create(ctx, tenant, body, draft.idempotency_key)
            except IdempotencyKeyInUse:
                await asyncio.sleep(KEY_IN_USE_WAIT_S)
        return await _create(ctx, tenant, body, draft.idempotency_key)
    except ValidationFailed as exc:
        field_name = exc.details.get("field")
        if field_name == "message" and "phone" in exc.details:
            raise DraftProblem(
                "error.personal_failed",
                draft=draft,
                phone=bidi(exc.details["phone"]),
                detail=bidi(exc.details.get("reason", exc.message)),
            ) from exc
        if field_name == "message" and "line" in exc.details:
            _template_of(draft)  # raises the sentence for the same mistake
        if body.send_at is None or field_name != "send_at":
            raise
        too_early = body.send_at < ctx.clock.now()
        raise DraftProblem(
            "error.send_at_past" if too_early else "error.send_at_too_far",
            draft=draft,
            days=create.MAX_SCHEDULE_AHEAD.days,
        ) from exc


async def _create(
    ctx: AppContext, tenant: TenantContext, body: BroadcastCreate, key: str | None
) -> Submitted:
    result = await create.create_broadcast(ctx, tenant, body, key)
    return Submitted(result.body.broadcast_id, replayed=result.body.idempotent)


async def cancel(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    return await control.cancel_broadcast(ctx, tenant, broadcast_id)


async def resume(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    return await control.resume_broadcast(ctx, tenant, broadcast_id)


async def pause(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    return await control.pause_broadcast(ctx, tenant, broadcast_id)


async def retry_failed(
    ctx: AppContext, tenant: TenantContext, broadcast_id: int, error_code: str | None
) -> int:
    """Queue failed recipients again (only those with ``error_code``, if given); how many."""
    codes = [error_code] if error_code else None
    return (await control.retry_failed(ctx, tenant, broadcast_id, codes)).requeued


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
