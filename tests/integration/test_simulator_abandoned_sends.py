"""A simulated send whose caller died before logging its end still gets its receipt.

The state a killed worker (or a database restart mid-call) leaves: the send's
start is in the simulator's log, its end never is, and the dispatcher recorded
the recipient ``sent`` with the send's provider message id (a retry of the same
client message id was answered as a repeat of it). WhatsApp answered that send
all the same, so its "delivered" receipt must come; sends that were refused,
repeats, and sends still in flight get none from this.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update

from tests.support.dispatch import counts_match_rows, create, dispatcher, scenario, unpaced
from tests.support.providers import simulator_of
from tests.support.rows import il_numbers
from tests.support.tenants import START, TenantFixture
from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcastRecipient
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.providers.base import OutgoingMessage, SessionRef
from wabroadcast.providers.simulator.models import SimulatorSend
from wabroadcast.providers.simulator.receipts import deliver_due_receipts
from wabroadcast.providers.simulator.repository.receipts import ABANDONED_AFTER
from wabroadcast.providers.simulator.rules import DEFAULT_DELIVER_AFTER_MS

R = WhatsAppBroadcastRecipient
LATENCY = timedelta(milliseconds=50)


async def _recipients(ctx: AppContext, broadcast_id: int) -> list[R]:
    async with ctx.database.transaction() as db:
        query = select(R).where(R.broadcast_id == broadcast_id).order_by(R.id)
        return list((await db.execute(query)).scalars())


async def _sends(ctx: AppContext) -> list[SimulatorSend]:
    async with ctx.database.transaction() as db:
        return list((await db.execute(select(SimulatorSend).order_by(SimulatorSend.id))).scalars())


async def _recorded_sent(ctx: AppContext, broadcast_id: int, pmids: dict[int, str]) -> None:
    """What the dispatcher writes for a sent recipient: ``sent`` with its provider id."""
    async with ctx.database.transaction() as db:
        for recipient_id, pmid in pmids.items():
            await db.execute(
                update(R)
                .where(R.id == recipient_id)
                .values(
                    status=RecipientStatus.SENT.value,
                    provider_message_id=pmid,
                    client_message_id=f"wab-{recipient_id}-1",
                    attempts=1,
                    sent_at=START,
                )
            )
        await shift_counts(
            db, {broadcast_id: {(RecipientStatus.QUEUED, RecipientStatus.SENT): len(pmids)}}, START
        )


def _started(
    tenant: TenantFixture,
    recipient: R,
    pmid: str,
    at: datetime,
    *,
    repeat: bool = False,
    outcome: str | None = None,
) -> SimulatorSend:
    """A send log row as the send log writes a send's start (and, given ``outcome``, its
    end: a refusal is logged with no receipt due)."""
    return SimulatorSend(
        session_id=tenant.session_id,
        phone=recipient.phone,
        client_message_id=f"wab-{recipient.id}-1",
        provider_message_id=pmid,
        repeat=repeat,
        outcome=outcome,
        error_code=None if outcome is None else "NOT_ON_WHATSAPP",
        started_at=at,
        finished_at=None if outcome is None else at + LATENCY,
        deliver_at=None,
        answer_due_at=at + LATENCY,
    )


async def test_a_send_whose_end_was_never_logged_gets_its_receipt_once(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(4), "abandoned")
    first, second, refused, repeated = await _recipients(ctx, broadcast_id)
    late = START + timedelta(seconds=30)
    async with ctx.database.transaction() as db:
        db.add_all(
            [
                # Its caller died mid-send: started, answered by WhatsApp, end never logged.
                _started(tenant, first, "sim-dead-1", START),
                # Another one, started later: still (almost) in flight when first looked at.
                _started(tenant, second, "sim-dead-2", late),
                # Refused by WhatsApp: nothing was delivered, no receipt ever.
                _started(tenant, refused, "sim-refused", START, outcome="failed"),
                # A repeat whose caller died: its original gets the receipt, not it.
                _started(tenant, repeated, "sim-dead-1", START, repeat=True),
            ]
        )
    await _recorded_sent(ctx, broadcast_id, {first.id: "sim-dead-1", second.id: "sim-dead-2"})

    clock.set(late + LATENCY + ABANDONED_AFTER - timedelta(milliseconds=1))
    assert await deliver_due_receipts(ctx) == 1
    rows = await _recipients(ctx, broadcast_id)
    assert [r.status for r in rows] == ["delivered", "sent", "queued", "queued"]
    assert rows[0].delivered_at == START + LATENCY + timedelta(
        milliseconds=DEFAULT_DELIVER_AFTER_MS
    )
    dead_1, dead_2, refusal, repeat = await _sends(ctx)
    assert (dead_1.outcome, dead_1.finished_at) == ("sent", START + LATENCY)
    assert dead_2.finished_at is None  # its caller may still log its end
    assert (repeat.outcome, repeat.deliver_at) == ("sent", None)
    assert (refusal.outcome, refusal.deliver_at, refusal.receipt_sent_at) == ("failed", None, None)

    clock.advance(0.002)
    assert await deliver_due_receipts(ctx) == 1
    assert [r.status for r in await _recipients(ctx, broadcast_id)] == [
        "delivered",
        "delivered",
        "queued",
        "queued",
    ]
    clock.advance(600)
    assert await deliver_due_receipts(ctx) == 0  # each receipt once
    await counts_match_rows(ctx, broadcast_id)


async def test_no_receipt_when_the_scenario_gives_none(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    await scenario(client, tenant, deliver_after_ms=None)
    broadcast_id = await create(client, tenant, il_numbers(1), "no receipts")
    (only,) = await _recipients(ctx, broadcast_id)
    async with ctx.database.transaction() as db:
        db.add(_started(tenant, only, "sim-dead", START))
    await _recorded_sent(ctx, broadcast_id, {only.id: "sim-dead"})
    clock.advance(600)
    assert await deliver_due_receipts(ctx) == 0
    (send,) = await _sends(ctx)
    assert (send.outcome, send.finished_at, send.deliver_at) == ("sent", START + LATENCY, None)
    assert (await _recipients(ctx, broadcast_id))[0].status == "sent"


async def test_a_retry_answered_as_a_repeat_of_a_dead_callers_send_ends_delivered(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    """The whole path: a worker dies mid-send (its caller cancelled), the dispatcher sends
    the recipient again with the same client message id, the simulator answers it as a
    repeat (sent, the first send's provider id, nothing delivered twice), and the receipt
    of the first send reaches the recipient."""
    await unpaced(ctx, tenant.session_id)
    broadcast_id = await create(client, tenant, il_numbers(1), "dead caller")
    (only,) = await _recipients(ctx, broadcast_id)
    ref = SessionRef(tenant.session_id, tenant.tenant_id, "simulator", {})
    await scenario(client, tenant, latency_ms=600_000)
    caller = asyncio.create_task(
        simulator_of(ctx).send(ref, OutgoingMessage(only.phone, "hi", f"wab-{only.id}-1"))
    )
    for _ in range(500):
        if await _sends(ctx):
            break
        await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    await scenario(client, tenant, latency_ms=0)

    await dispatcher(ctx).run_until_idle()
    (row,) = await _recipients(ctx, broadcast_id)
    original, repeat = await _sends(ctx)
    assert (row.status, row.provider_message_id) == ("sent", original.provider_message_id)
    assert (original.finished_at, repeat.repeat, repeat.outcome) == (None, True, "sent")

    clock.advance(600 + ABANDONED_AFTER.total_seconds() + 0.001)
    assert await deliver_due_receipts(ctx) == 1
    assert (await _recipients(ctx, broadcast_id))[0].status == "delivered"
    original, repeat = await _sends(ctx)
    assert (original.outcome, original.receipt_sent_at) == ("sent", clock.now())
    assert repeat.receipt_sent_at is None
    await counts_match_rows(ctx, broadcast_id)
