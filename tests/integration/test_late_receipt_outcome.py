"""A finished broadcast's status follows its counts when late receipts change them.

The rule (docs/guarantees.md): once nothing is queued or sending, the status is
``final_broadcast_status`` of the counts at every moment: a late failure after
"completed" makes it partial (or failed), a delivery that proves an unknown
outcome arrived can make it completed again. Cancelled stays cancelled.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from structlog.testing import capture_logs

from tests.integration.test_crm_webhooks import subscribe
from tests.support.dispatch import broadcast, counts_match_rows, create, drain, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import START, TenantFixture
from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WebhookDelivery, WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.status import RecipientStatus, final_broadcast_status
from wabroadcast.providers.base import Receipt, ReceiptStatus
from wabroadcast.receipts.service import apply_receipts

R = WhatsAppBroadcastRecipient


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def provider_ids(ctx: AppContext, broadcast_id: int) -> list[str]:
    async with ctx.database.transaction() as session:
        ids = (
            await session.execute(
                select(R.provider_message_id).where(R.broadcast_id == broadcast_id).order_by(R.id)
            )
        ).scalars()
        return [str(i) for i in ids]


async def late(
    ctx: AppContext, tenant: TenantFixture, pmid: str, status: str, seconds: float = 3600
) -> None:
    at = START.replace(hour=14)
    error = ("131026", "Message undeliverable") if status == "failed" else (None, None)
    async with ctx.database.transaction() as session:
        await apply_receipts(
            session,
            tenant.session_id,
            [Receipt(pmid, ReceiptStatus(status), at, *error)],
            at,
        )


def agrees(b: dict[str, Any]) -> bool:
    """The status is what the (cumulative) API counts say it must be."""
    return bool(b["status"] == final_broadcast_status(b["sent_count"], b["failed_count"]).value)


async def test_a_late_failure_moves_completed_to_partial_then_failed(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(2))
    await drain(ctx, clock)
    done = await broadcast(client, tenant, broadcast_id)
    assert (done["status"], done["sent_count"], done["failed_count"]) == ("completed", 2, 0)
    first, second = await provider_ids(ctx, broadcast_id)

    with capture_logs() as logs:
        await late(ctx, tenant, first, "failed")
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("partial", 1, 1)
    assert agrees(b)
    assert b["finished_at"] == done["finished_at"]  # when it ended does not move
    moved = [e for e in logs if e["event"] == "[WA_BROADCAST] outcome follows late receipts"]
    assert [(e["broadcast_id"], e["status"], e["failed_count"]) for e in moved] == [
        (broadcast_id, "partial", 1)
    ]

    await late(ctx, tenant, second, "failed")
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("failed", 0, 2)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_delivery_that_proves_an_unknown_outcome_can_complete_it_again(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(2))
    await drain(ctx, clock)
    first, second = await provider_ids(ctx, broadcast_id)
    # The second send's outcome was never learnt: the worker gave up on it.
    async with ctx.database.transaction() as session:
        await session.execute(
            update(R)
            .where(R.provider_message_id == second)
            .values(status="failed", error_code="UNKNOWN_OUTCOME", failed_at=START)
        )
        await shift_counts(
            session, {broadcast_id: {(RecipientStatus.SENT, RecipientStatus.FAILED): 1}}, START
        )
        await session.execute(
            update(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.id == broadcast_id)
            .values(status="partial")
        )
    await late(ctx, tenant, second, "delivered")
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["delivered_count"], b["failed_count"]) == ("completed", 1, 0)
    await late(ctx, tenant, first, "read")
    b = await broadcast(client, tenant, broadcast_id)
    # The API's counts are cumulative: a read message was delivered (and sent) too.
    assert (b["status"], b["read_count"], b["delivered_count"]) == ("completed", 1, 2)
    assert agrees(b)
    await counts_match_rows(ctx, broadcast_id)


async def test_receipts_that_change_no_outcome_leave_the_status_alone(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(3)
    broadcast_id = await create(client, tenant, numbers)
    await drain(ctx, clock)
    first, second, third = await provider_ids(ctx, broadcast_id)
    await late(ctx, tenant, first, "failed")
    with capture_logs() as logs:
        await late(ctx, tenant, second, "delivered")
        await late(ctx, tenant, first, "failed")  # repeated: a no-op
        await late(ctx, tenant, third, "read")
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["failed_count"], b["delivered_count"], b["read_count"]) == (
        "partial",
        1,
        2,
        1,
    )
    assert not [e for e in logs if e["event"].startswith("[WA_BROADCAST]")]


async def test_a_cancelled_broadcast_stays_cancelled_while_its_counts_follow_receipts(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(2))
    await drain(ctx, clock)
    first, _ = await provider_ids(ctx, broadcast_id)
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.id == broadcast_id)
            .values(status="cancelled")
        )
    await late(ctx, tenant, first, "failed")
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("cancelled", 1, 1)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_late_failure_tells_the_crm_before_the_new_outcome(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    events = ["recipient.failed", "broadcast.completed", "broadcast.partial"]
    await subscribe(client, tenant, "http://127.0.0.1:9/hooks", events)
    broadcast_id = await create(client, tenant, il_numbers(2))
    await drain(ctx, clock)
    first, _ = await provider_ids(ctx, broadcast_id)
    await late(ctx, tenant, first, "failed")
    # A second report of the same failure is not a second event.
    await late(ctx, tenant, first, "failed")

    async with ctx.database.transaction() as session:
        rows = (
            await session.execute(
                select(WebhookDelivery.event_type, WebhookDelivery.data).order_by(
                    WebhookDelivery.id
                )
            )
        ).all()
    assert [event_type for event_type, _ in rows] == [
        "broadcast.completed",
        "recipient.failed",
        "broadcast.partial",
    ]
    failed = rows[1][1]
    assert (failed["broadcast_id"], failed["phone"]) == (broadcast_id, il_numbers(1)[0])
    assert (failed["error_code"], failed["error_message"]) == ("131026", "Message undeliverable")
