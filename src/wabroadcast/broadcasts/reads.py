"""Reading broadcasts and their recipients, a cursor page at a time."""

from __future__ import annotations

from wabroadcast.broadcasts.estimating import read_lines, with_estimates
from wabroadcast.broadcasts.repository.broadcasts import BroadcastRepository
from wabroadcast.broadcasts.repository.retries import RetryRepository
from wabroadcast.broadcasts.schemas import (
    BroadcastOut,
    InvalidRecipient,
    MissingVariable,
    RecipientOut,
)
from wabroadcast.broadcasts.views import (
    broadcast_out,
    recipient_out,
)
from wabroadcast.context import AppContext
from wabroadcast.domain.errors import (
    BroadcastNotFound,
)
from wabroadcast.domain.status import (
    BroadcastStatus,
    RecipientStatus,
)
from wabroadcast.observability.logging import get_logger
from wabroadcast.pagination import decode_cursor, page_cursor
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.broadcasts")


async def get_broadcast(ctx: AppContext, tenant: TenantContext, broadcast_id: int) -> BroadcastOut:
    async with ctx.database.transaction() as session:
        broadcast = await BroadcastRepository(session).get(tenant.tenant_id, broadcast_id)
        if broadcast is None:
            raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": broadcast_id})
        shown = [broadcast_out(broadcast)]
        lines = await read_lines(session, ctx, tenant.tenant_id, shown)
    return (await with_estimates(ctx, lines, shown))[0]


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
        shown = [broadcast_out(b) for b in rows]
        lines = await read_lines(session, ctx, tenant.tenant_id, shown)
    return await with_estimates(ctx, lines, shown), page_cursor(
        [b.broadcast_id for b in shown], limit
    )


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
        broadcast = await repo.get(tenant.tenant_id, broadcast_id)
        if broadcast is None:
            raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": broadcast_id})
        rows = await repo.recipients(broadcast_id, status=status, after_id=after_id, limit=limit)
        return [recipient_out(r, broadcast.message) for r in rows], page_cursor(
            [r.id for r in rows], limit
        )


async def proof_details(
    ctx: AppContext, tenant: TenantContext, broadcast_id: int
) -> tuple[list[InvalidRecipient], list[MissingVariable], dict[str | None, int]]:
    """What the broadcast's proof said that ``BroadcastOut`` leaves out (its first 20
    invalid inputs, the fields some recipients lacked), and its failed recipients' error
    codes with their counts (what a "retry failed" may name)."""
    async with ctx.database.transaction() as session:
        broadcast = await BroadcastRepository(session).get(tenant.tenant_id, broadcast_id)
        if broadcast is None:
            raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": broadcast_id})
        invalid = [InvalidRecipient(**item) for item in broadcast.invalid_recipients]
        missing = [MissingVariable(**item) for item in broadcast.missing_variables or []]
        codes = (
            await RetryRepository(session).failed_codes(broadcast_id)
            if broadcast.failed_count
            else {}
        )
    return invalid, missing, codes
