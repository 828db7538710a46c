"""Opt-out use cases: add numbers (API, CSV file, stop word), list, remove, stop words.

An opt-out is written in the same transaction as its effect on broadcasts already
running: the number's queued recipients become ``skipped`` (``opted_out``), and a
broadcast left with nothing to send finishes. The tenant row is locked first
(``OptOutRepository.lock_tenant``), so a broadcast being created at that moment
either is seen here or sees the opt-out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from wabroadcast.broadcasts.schemas import InvalidRecipient
from wabroadcast.context import AppContext
from wabroadcast.domain.csv_import import import_csv
from wabroadcast.domain.errors import OptOutNotFound, ValidationFailed
from wabroadcast.domain.opt_outs import (
    DEFAULT_STOP_WORDS,
    normalize_phone_list,
)
from wabroadcast.domain.phones import InvalidPhone, mask_phone, normalize_phone
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.opt_outs.effects import opt_out
from wabroadcast.opt_outs.repository import OptOutRepository
from wabroadcast.opt_outs.schemas import (
    INVALID_LISTED,
    LISTED,
    OptOutAdded,
    OptOutOut,
    StopWords,
    StopWordsOut,
)
from wabroadcast.pagination import decode_cursor, page_cursor
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.opt_outs")

# Lists longer than this are normalized off the event loop.
INLINE_NORMALIZE = 1000


async def add_opt_outs(
    ctx: AppContext,
    tenant: TenantContext,
    phones: Sequence[str],
    reason: str | None,
    *,
    source: str = "api",
) -> OptOutAdded:
    """Add numbers (any spelling) to the tenant's list and skip their queued sends."""
    if len(phones) > INLINE_NORMALIZE:
        normalized = await asyncio.to_thread(normalize_phone_list, phones, tenant.default_region)
    else:
        normalized = normalize_phone_list(phones, tenant.default_region)
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        added, skipped = await opt_out(
            session, tenant.tenant_id, normalized.phones, source, reason, now
        )
    skipped_count = sum(skipped.values())
    log.info(
        f"{BROADCAST_TAG} numbers opted out",
        broadcast_id=sorted(skipped),
        tenant_id=tenant.tenant_id,
        source=source,
        added_count=len(added),
        skipped_count=skipped_count,
        first_added=[mask_phone(p) for p in added[:5]],
    )
    return OptOutAdded(
        added_count=len(added),
        added=added[:LISTED],
        already_count=len(normalized.phones) - len(added),
        invalid_count=len(normalized.invalid),
        invalid=[
            InvalidRecipient(input=r.input, reason=r.reason)
            for r in normalized.invalid[:INVALID_LISTED]
        ],
        skipped_count=skipped_count,
    )


async def import_opt_outs(
    ctx: AppContext, tenant: TenantContext, data: bytes, reason: str | None
) -> OptOutAdded:
    """``add_opt_outs`` for the phone column of a CSV file (the broadcasts' importer)."""
    imported = await asyncio.to_thread(import_csv, data, tenant.default_region)
    if not imported.rows:
        raise ValidationFailed("file: the file has no rows", details={"field": "file"})
    return await add_opt_outs(
        ctx, tenant, [row.phone for row in imported.rows], reason, source="import"
    )


async def list_opt_outs(
    ctx: AppContext,
    tenant: TenantContext,
    *,
    phone: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[OptOutOut], str | None]:
    """The tenant's opt-outs, newest first; ``phone`` (any spelling) finds one number."""
    before_id = decode_cursor(cursor)
    wanted = None if phone is None else _e164(tenant, phone)
    async with ctx.database.transaction() as session:
        rows = await OptOutRepository(session).page(
            tenant.tenant_id, phone=wanted, before_id=before_id, limit=limit
        )
    items = [
        OptOutOut(
            phone=r.phone,
            source=r.source,
            reason=r.reason,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return items, page_cursor([r.id for r in rows], limit)


async def remove_opt_out(ctx: AppContext, tenant: TenantContext, phone: str) -> None:
    """Take a number (any spelling) off the list: later broadcasts message it again.
    Recipients skipped while it was opted out stay skipped."""
    e164 = _e164(tenant, phone)
    async with ctx.database.transaction() as session:
        removed = await OptOutRepository(session).remove(tenant.tenant_id, e164)
    if not removed:
        raise OptOutNotFound("This number is not on the opt-out list", details={"phone": e164})
    log.info(
        f"{BROADCAST_TAG} opt-out removed",
        broadcast_id=None,
        tenant_id=tenant.tenant_id,
        phone=mask_phone(e164),
    )


async def get_stop_words(ctx: AppContext, tenant: TenantContext) -> StopWordsOut:
    async with ctx.database.transaction() as session:
        words, _ = (await OptOutRepository(session).stop_words([tenant.tenant_id]))[
            tenant.tenant_id
        ]
    return _stop_words_out(words)


async def set_stop_words(ctx: AppContext, tenant: TenantContext, body: StopWords) -> StopWordsOut:
    async with ctx.database.transaction() as session:
        await OptOutRepository(session).set_stop_words(tenant.tenant_id, body.stop_words)
    return _stop_words_out(body.stop_words)


def _e164(tenant: TenantContext, phone: str) -> str:
    result = normalize_phone(phone, tenant.default_region)
    if isinstance(result, InvalidPhone):
        raise ValidationFailed(
            f"phone: not a phone number ({result.reason.value})",
            details={"field": "phone", "reason": result.reason.value},
        )
    return result.e164


def _stop_words_out(words: list[str] | None) -> StopWordsOut:
    if words is None:
        return StopWordsOut(stop_words=list(DEFAULT_STOP_WORDS), default=True)
    return StopWordsOut(stop_words=words, default=False)
