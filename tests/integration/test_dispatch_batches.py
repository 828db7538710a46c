"""Work done for many slots at once: claims, results and lease releases, on both databases.

A worker that serves a thousand sessions claims for all of them in one
statement and writes their results together; these tests check that grouping
changes nothing a single slot would see: oldest broadcast first, exact
counters, results fenced by each one's own lease epoch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests.support.dispatch import (
    broadcast,
    counts_match_rows,
    create,
    dispatcher,
    paced,
    recipients,
    scenario,
    sends,
    unpaced,
)
from tests.support.providers import simulator_of
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import SessionLease, WhatsAppBroadcastRecipient
from wabroadcast.dispatch.claims import ClaimBatcher, NextBatch
from wabroadcast.dispatch.dispatcher import Dispatcher
from wabroadcast.dispatch.repository import claims as claims_module
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.results import ResultRepository
from wabroadcast.dispatch.repository.rows import Claimed, ClaimRequest, Result
from wabroadcast.dispatch.slot import SlotRunner
from wabroadcast.dispatch.tuning import Tuning
from wabroadcast.dispatch.writer import ResultWriter
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.providers.base import (
    MoreMessages,
    OutgoingMessage,
    ResultCallback,
    SendOutcome,
    SendResult,
    SessionRef,
)


async def _lease(ctx: AppContext, tenant: TenantFixture, holder: str = "me") -> int:
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(tenant.session_id, tenant.tenant_id, 1)
        epoch = await repo.acquire_slot(
            tenant.session_id, 0, holder, ctx.clock.now(), timedelta(seconds=60)
        )
    assert epoch is not None
    return epoch


async def _leases(ctx: AppContext) -> dict[str, str | None]:
    async with ctx.database.transaction() as db:
        rows = await db.execute(select(SessionLease.session_id, SessionLease.holder))
        return {str(session_id): holder for session_id, holder in rows.all()}


async def _two_sessions_claimed(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, mine_count: int
) -> tuple[TenantFixture, int, int, int, int, dict[str, list[Claimed]]]:
    """A broadcast for ``tenant`` and one of 2 for another tenant, both claimed whole:
    (other tenant, my broadcast, theirs, my epoch, theirs, the claims by session)."""
    other = await make_tenant(ctx, name="Other")
    mine_id = await create(client, tenant, il_numbers(mine_count, start=0))
    theirs_id = await create(client, other, il_numbers(2, start=10))
    mine, theirs = await _lease(ctx, tenant), await _lease(ctx, other)
    async with ctx.database.transaction() as db:
        claimed = await ClaimRepository(db).claim_many(
            [ClaimRequest(tenant.session_id, mine, 10), ClaimRequest(other.session_id, theirs, 10)],
            "me",
            ctx.clock.now(),
        )
    return other, mine_id, theirs_id, mine, theirs, claimed


async def test_one_claim_serves_many_sessions_oldest_broadcast_first(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    older = await create(client, tenant, il_numbers(2, start=0), message="older")
    newer = await create(client, tenant, il_numbers(3, start=10), message="newer")
    theirs = await create(client, other, il_numbers(4, start=20), message="theirs")
    mine, their_epoch = await _lease(ctx, tenant), await _lease(ctx, other)
    async with ctx.database.transaction() as db:
        claimed = await ClaimRepository(db).claim_many(
            [
                ClaimRequest(tenant.session_id, mine, 4),
                ClaimRequest(other.session_id, their_epoch, 2),
            ],
            "me",
            ctx.clock.now(),
        )
    # The older broadcast is taken whole, the newer one fills the rest of the batch.
    ours = claimed[tenant.session_id]
    assert [(c.broadcast_id, c.message) for c in ours] == [
        (older, "older"),
        (older, "older"),
        (newer, "newer"),
        (newer, "newer"),
    ]
    assert [c.broadcast_id for c in claimed[other.session_id]] == [theirs, theirs]
    for fixture, broadcast_id, sending, epoch in (
        (tenant, older, 2, mine),
        (tenant, newer, 2, mine),
        (other, theirs, 2, their_epoch),
    ):
        assert (await broadcast(client, fixture, broadcast_id))["status"] == "running"
        await counts_match_rows(ctx, broadcast_id)
        async with ctx.database.transaction() as db:
            epochs = (
                await db.execute(
                    select(WhatsAppBroadcastRecipient.lease_epoch).where(
                        WhatsAppBroadcastRecipient.broadcast_id == broadcast_id,
                        WhatsAppBroadcastRecipient.status == "sending",
                    )
                )
            ).scalars()
            assert list(epochs) == [epoch] * sending
    # A short batch means the session had nothing more due: 3 of 4 claimed, 1 left.
    async with ctx.database.transaction() as db:
        rest = await ClaimRepository(db).claim(
            tenant.session_id, holder="me", epoch=mine, now=ctx.clock.now(), limit=4
        )
    assert [c.broadcast_id for c in rest] == [newer]


async def test_a_claim_takes_one_request_per_session(
    tenant: TenantFixture, ctx: AppContext
) -> None:
    async with ctx.database.transaction() as db:
        with pytest.raises(ValueError, match="one request per session"):
            await ClaimRepository(db).claim_many(
                [ClaimRequest(tenant.session_id, 1, 5), ClaimRequest(tenant.session_id, 2, 5)],
                "me",
                ctx.clock.now(),
            )


async def test_results_of_many_slots_are_written_together_each_fenced_by_its_epoch(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other, mine_id, theirs_id, mine, theirs, claimed = await _two_sessions_claimed(
        client, tenant, ctx, mine_count=3
    )
    transactions: list[int] = []
    record = ResultRepository.record

    async def counted(
        repo: ResultRepository, results: list[Result], *args: object, **kwargs: object
    ) -> set[int]:
        transactions.append(len(results))
        return await record(repo, results, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ResultRepository, "record", counted)
    writer = ResultWriter(ctx, dispatcher(ctx).close_out)
    sent = [
        Result(c.recipient_id, c.broadcast_id, mine, RecipientStatus.SENT, f"p-{c.recipient_id}")
        for c in claimed[tenant.session_id]
    ]
    # A slot whose lease moved on (a stale epoch): its results must not land.
    stale = [
        Result(c.recipient_id, c.broadcast_id, theirs - 1, RecipientStatus.SENT, "late")
        for c in claimed[other.session_id]
    ]
    await asyncio.gather(
        writer.write(sent[:1]),
        writer.write(sent[1:], release=(tenant.session_id, 0, mine)),
        writer.write(stale),
    )
    # All three arrived before the writer ran: one transaction for the three slots.
    assert transactions == [len(sent) + len(stale)]
    b = await broadcast(client, tenant, mine_id)
    assert (b["status"], b["sent_count"]) == ("completed", 3)
    async with ctx.database.transaction() as db:
        stored = (
            await db.execute(
                select(WhatsAppBroadcastRecipient.provider_message_id).where(
                    WhatsAppBroadcastRecipient.broadcast_id == mine_id
                )
            )
        ).scalars()
        assert sorted(str(p) for p in stored) == sorted(
            f"p-{c.recipient_id}" for c in claimed[tenant.session_id]
        )
    t = await broadcast(client, other, theirs_id)
    assert (t["status"], t["queued_count"], t["sent_count"]) == ("running", 2, 0)
    await counts_match_rows(ctx, mine_id)
    await counts_match_rows(ctx, theirs_id)
    leases = await _leases(ctx)
    assert (leases[tenant.session_id], leases[other.session_id]) == (None, "me")


async def test_a_pass_gives_back_the_slots_of_a_session_with_nothing_due(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    broadcast_id = await create(client, tenant, il_numbers(2))
    async with ctx.database.transaction() as db:
        await db.execute(
            update(WhatsAppBroadcastRecipient)
            .where(WhatsAppBroadcastRecipient.broadcast_id == broadcast_id)
            .values(next_attempt_at=clock.now() + timedelta(minutes=5))
        )
    worker = dispatcher(ctx)
    await worker.tick()
    assert worker.held == {}
    assert (await _leases(ctx))[tenant.session_id] is None
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "queued"
    # Once they are due, the next pass sends them.
    clock.advance(301)
    await worker.run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"]) == ("completed", 2)
    assert len((await sends(client, tenant))["items"]) == 2


async def test_a_slow_call_logs_each_end_and_keeps_one_send_in_flight(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """Each send's end goes into the log with the next send's start; the last on its own."""
    await scenario(client, tenant, latency_ms=20)
    numbers = il_numbers(3)
    results = await simulator_of(ctx).send_many(
        SessionRef(tenant.session_id, tenant.tenant_id, "simulator", {}),
        [OutgoingMessage(n, "hi", f"slow-{i}") for i, n in enumerate(numbers)],
    )
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 3
    log = await sends(client, tenant)
    assert [(s["phone"], s["outcome"]) for s in log["items"]] == [(n, "sent") for n in numbers]
    assert all(s["finished_at"] is not None for s in log["items"])
    assert log["hwm"] == 1


async def test_a_write_that_fails_costs_only_its_own_slot_its_results(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other, mine_id, theirs_id, mine, theirs, claimed = await _two_sessions_claimed(
        client, tenant, ctx, mine_count=2
    )
    record = ResultRepository.record

    async def refuse_poison(
        repo: ResultRepository, results: list[Result], *args: object, **kwargs: object
    ) -> set[int]:
        if any(r.error_code == "POISON" for r in results):
            raise RuntimeError("the database refused this result")
        return await record(repo, results, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ResultRepository, "record", refuse_poison)
    writer = ResultWriter(ctx, dispatcher(ctx).close_out)
    good = [
        Result(c.recipient_id, c.broadcast_id, mine, RecipientStatus.SENT, "ok")
        for c in claimed[tenant.session_id]
    ]
    poison = [
        Result(c.recipient_id, c.broadcast_id, theirs, RecipientStatus.FAILED, None, "POISON")
        for c in claimed[other.session_id]
    ]
    outcomes = await asyncio.gather(
        writer.write(good), writer.write(poison), return_exceptions=True
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], RuntimeError)
    assert (await broadcast(client, tenant, mine_id))["status"] == "completed"
    theirs_now = await broadcast(client, other, theirs_id)
    assert (theirs_now["status"], theirs_now["queued_count"]) == ("running", 2)
    await counts_match_rows(ctx, mine_id)
    await counts_match_rows(ctx, theirs_id)


async def test_a_cancel_during_a_claim_waits_for_it_instead_of_deadlocking(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim is held between locking its recipients and counting them; the cancel
    comes in then. Both must succeed: the claimed recipients go on, the rest are cancelled."""
    broadcast_id = await create(client, tenant, il_numbers(5))
    epoch = await _lease(ctx, tenant)
    claimed_rows = asyncio.Event()
    go_on = asyncio.Event()
    count = shift_counts

    async def held_shift_counts(*args: object, **kwargs: object) -> None:
        claimed_rows.set()
        await go_on.wait()
        await count(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(claims_module, "shift_counts", held_shift_counts)

    async def claim() -> int:
        async with ctx.database.transaction() as db:
            batch = await ClaimRepository(db).claim(
                tenant.session_id, holder="me", epoch=epoch, now=ctx.clock.now(), limit=2
            )
        return len(batch)

    claiming = asyncio.create_task(claim())
    await claimed_rows.wait()
    cancelling = asyncio.create_task(
        client.post(f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers)
    )
    await asyncio.sleep(0.3)  # the cancel is now waiting on the claim's locks
    go_on.set()
    assert await claiming == 2
    response = await cancelling
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["queued_count"], body["cancelled_count"]) == ("cancelled", 2, 3)
    await counts_match_rows(ctx, broadcast_id)


async def _statuses_and_attempts(ctx: AppContext, broadcast_id: int) -> list[tuple[str, int]]:
    """Each recipient's status and attempts, in id order."""
    async with ctx.database.transaction() as db:
        rows = await db.execute(
            select(WhatsAppBroadcastRecipient.status, WhatsAppBroadcastRecipient.attempts)
            .where(WhatsAppBroadcastRecipient.broadcast_id == broadcast_id)
            .order_by(WhatsAppBroadcastRecipient.id)
        )
        return [(str(status), int(attempts)) for status, attempts in rows.all()]


async def _first_send_logged(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    """Wait until the simulator has logged the session's first send."""
    for _ in range(500):
        if (await sends(client, tenant))["items"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no send was logged")


async def _cancel_during_the_first_send(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, numbers: list[str]
) -> tuple[int, Dispatcher, asyncio.Task[None]]:
    """A broadcast whose recipients are all claimed at once, cancelled while the first
    one is with WhatsApp (2 s latency): its id, the worker and its run."""
    await unpaced(ctx, tenant.session_id)
    await scenario(client, tenant, latency_ms=2000, deliver_after_ms=None)
    broadcast_id = await create(client, tenant, numbers)
    worker = dispatcher(ctx)
    running = asyncio.create_task(worker.run_until_idle())
    await _first_send_logged(client, tenant)
    response = await client.post(
        f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers
    )
    # All of them are claimed (``sending``): the cancel itself cancels none.
    assert (response.json()["status"], response.json()["cancelled_count"]) == ("cancelled", 0)
    return broadcast_id, worker, running


async def _cancelled_after_one_send(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    broadcast_id: int,
    numbers: list[str],
) -> None:
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"], body["cancelled_count"], body["queued_count"]) == (
        "cancelled",
        1,
        len(numbers) - 1,
        0,
    )
    # Put back without using an attempt: only the one sent has one.
    assert await _statuses_and_attempts(ctx, broadcast_id) == [("sent", 1)] + [("cancelled", 0)] * (
        len(numbers) - 1
    )
    assert [s["phone"] for s in (await sends(client, tenant))["items"]] == numbers[:1]
    await counts_match_rows(ctx, broadcast_id)


async def test_recipients_claimed_before_a_cancel_are_not_sent_after_it(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """Once the worker has noted the cancel (a pass does), the recipients it claimed but
    has not handed to WhatsApp are put back and cancelled: only the first is sent."""
    numbers = il_numbers(5)
    broadcast_id, worker, running = await _cancel_during_the_first_send(
        client, tenant, ctx, numbers
    )
    await worker.note_cancelled()
    assert worker.cancelled == {broadcast_id}
    await running
    await _cancelled_after_one_send(client, tenant, ctx, broadcast_id, numbers)


async def test_a_stopping_worker_puts_back_a_cancelled_broadcasts_claims_as_cancelled(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """The worker stops before it noted the cancel: the recipients it puts back end
    cancelled, not queued under a broadcast that will never send them."""
    numbers = il_numbers(5)
    broadcast_id, worker, running = await _cancel_during_the_first_send(
        client, tenant, ctx, numbers
    )
    worker.stopping.set()
    await running
    await _cancelled_after_one_send(client, tenant, ctx, broadcast_id, numbers)


async def test_a_paced_slot_does_not_send_a_recipient_cancelled_while_it_waited_its_turn(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """One message a second: the broadcast is cancelled just after the first send, while
    the slot waits for the next turn with the second recipient claimed (and the third, if
    its claim ahead came before the cancel); no pass of the worker runs meanwhile, and
    still neither is sent."""
    await paced(ctx, tenant.session_id, 60)
    await scenario(client, tenant, deliver_after_ms=None)
    numbers = il_numbers(3)
    broadcast_id = await create(client, tenant, numbers)
    running = asyncio.create_task(dispatcher(ctx).run_until_idle())
    await _first_send_logged(client, tenant)
    response = await client.post(
        f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers
    )
    assert response.json()["status"] == "cancelled"
    await running
    await _cancelled_after_one_send(client, tenant, ctx, broadcast_id, numbers)


async def test_a_paced_slot_writes_a_result_before_waiting_for_its_next_turn(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """Thirty a minute: the first recipient shows as sent while the slot waits the two
    seconds for its second turn, not only once the second is sent too."""
    await paced(ctx, tenant.session_id, 30)
    await scenario(client, tenant, deliver_after_ms=None)
    broadcast_id = await create(client, tenant, il_numbers(2))
    running = asyncio.create_task(dispatcher(ctx).run_until_idle())
    try:
        for _ in range(1000):
            first = (await recipients(client, tenant, broadcast_id))[0]
            if first["status"] == "sent":
                break
            await asyncio.sleep(0.01)
        assert first["status"] == "sent"
        assert len((await sends(client, tenant))["items"]) == 1
    finally:
        await running
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 2)
    await counts_match_rows(ctx, broadcast_id)


async def test_slots_asking_for_work_together_are_served_by_one_transaction(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await make_tenant(ctx, name="Other")
    await unpaced(ctx, tenant.session_id, max_concurrency=2)
    mine_id = await create(client, tenant, il_numbers(30, start=0))
    theirs_id = await create(client, other, il_numbers(4, start=100))
    ttl = timedelta(seconds=60)
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(tenant.session_id, tenant.tenant_id, 2)
        await repo.ensure_slots(other.session_id, other.tenant_id, 1)
        taken = await repo.acquire_slots(
            [(tenant.session_id, 0), (tenant.session_id, 1), (other.session_id, 0)],
            "me",
            ctx.clock.now(),
            ttl,
        )
    calls: list[str] = []
    claim_many, get_sessions = ClaimRepository.claim_many, LeaseRepository.get_sessions

    async def counted_claim(repo: ClaimRepository, *args: object, **kwargs: object) -> object:
        calls.append("claim")
        return await claim_many(repo, *args, **kwargs)  # type: ignore[arg-type]

    async def counted_read(repo: LeaseRepository, *args: object) -> object:
        calls.append("transaction")  # the batcher reads the sessions once per transaction
        return await get_sessions(repo, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ClaimRepository, "claim_many", counted_claim)
    monkeypatch.setattr(LeaseRepository, "get_sessions", counted_read)
    claimer = ClaimBatcher(ctx, "me", lambda row, seconds: 10)
    first, second, theirs, beyond = await asyncio.gather(
        claimer.next_batch(tenant.session_id, 0, taken[(tenant.session_id, 0)], None),
        claimer.next_batch(tenant.session_id, 1, taken[(tenant.session_id, 1)], None),
        claimer.next_batch(other.session_id, 0, taken[(other.session_id, 0)], None),
        # The other tenant's session has one slot only: slot 1 must stop.
        claimer.next_batch(other.session_id, 1, 99, None),
    )
    # One transaction, one claim: the session's two slots share it, split in order.
    assert calls == ["transaction", "claim"]
    assert first is not None
    assert second is not None
    assert theirs is not None
    assert beyond is None
    mine_first = [c.recipient_id for c in first.claimed]
    mine_second = [c.recipient_id for c in second.claimed]
    assert len(mine_first) == len(mine_second) == 10
    assert max(mine_first) < min(mine_second)
    # Each slot's part is fenced by its own lease epoch.
    async with ctx.database.transaction() as db:
        epochs = dict(
            (
                await db.execute(
                    select(
                        WhatsAppBroadcastRecipient.id, WhatsAppBroadcastRecipient.lease_epoch
                    ).where(WhatsAppBroadcastRecipient.id.in_(mine_first + mine_second))
                )
            ).all()
        )
    assert {epochs[i] for i in mine_first} == {taken[(tenant.session_id, 0)]}
    assert {epochs[i] for i in mine_second} == {taken[(tenant.session_id, 1)]}
    assert [c.broadcast_id for c in theirs.claimed] == [theirs_id] * 4
    assert theirs.limit == 10
    await counts_match_rows(ctx, mine_id)
    await counts_match_rows(ctx, theirs_id)


async def test_a_slot_that_stops_puts_back_the_batch_it_claimed_ahead(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    """The first batch (``Tuning.first_claim``, 10) is full, so the next is claimed while
    it goes out; the session disconnects at the 5th send, and every unsent recipient
    claimed goes back to queued."""
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(50)
    await scenario(client, tenant, fail_numbers={numbers[4]: "SESSION_DISCONNECTED"})
    broadcast_id = await create(client, tenant, numbers)
    worker = dispatcher(ctx)
    with pytest.raises(RuntimeError, match="idle"):
        await worker.run_until_idle(max_rounds=1)  # one pass, its slot run to the end
    statuses = await _statuses_and_attempts(ctx, broadcast_id)
    assert [status for status, _ in statuses] == ["sent"] * 4 + ["queued"] * 46
    # Put back without using an attempt: only the four sent ones have one.
    assert [attempts for _, attempts in statuses] == [1] * 4 + [0] * 46
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "running"
    await counts_match_rows(ctx, broadcast_id)
    log = await sends(client, tenant)
    assert [s["phone"] for s in log["items"]] == numbers[:5]


async def test_a_long_call_has_its_sent_results_written_while_it_goes_on(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """Four sends of 300 ms in one provider call: the first is recorded ``sent`` (and
    counted on its broadcast) before the last has even started, not when the call ends."""
    await unpaced(ctx, tenant.session_id)
    await scenario(client, tenant, latency_ms=300, deliver_after_ms=None)
    broadcast_id = await create(client, tenant, il_numbers(4))
    running = asyncio.create_task(
        dispatcher(ctx, tuning=Tuning(flush_after_s=0.0)).run_until_idle()
    )
    try:
        for _ in range(500):
            if (await broadcast(client, tenant, broadcast_id))["sent_count"] >= 1:
                break
            await asyncio.sleep(0.01)
        started = len((await sends(client, tenant))["items"])
    finally:
        await running
    assert started < 4
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 4)
    await counts_match_rows(ctx, broadcast_id)


class _AsksForMoreOnceItIsClaimed:
    """A provider that sends at once (reporting each result as it goes), but asks a
    call's ``more`` only after the slot's batch claimed ahead is in (so the test does
    not depend on timing)."""

    kind = "simulator"
    supports_client_message_id = True

    def __init__(self, worker: Dispatcher) -> None:
        self.worker = worker
        self.calls: list[list[str]] = []

    async def send_many(
        self,
        session: SessionRef,
        messages: Sequence[OutgoingMessage],
        on_result: ResultCallback | None = None,
        more: MoreMessages | None = None,
    ) -> list[SendResult]:
        sent: list[str] = []
        self.calls.append(sent)
        batch = list(messages)
        while batch:
            for message in batch:
                sent.append(message.client_message_id)
                if on_result is not None:
                    result = SendResult(SendOutcome.SENT, f"fake-{message.client_message_id}")
                    on_result(len(sent) - 1, result)
            upcoming = self.worker.held[(session.session_id, 0)].batches.upcoming
            if upcoming is not None:
                await asyncio.wait([upcoming])
            batch = list(more()) if more is not None else []
        return [SendResult(SendOutcome.SENT, provider_message_id=f"fake-{i}") for i in sent]

    async def send(
        self, session: SessionRef, to: str, text: str, client_message_id: str
    ) -> SendResult:
        (result,) = await self.send_many(session, [OutgoingMessage(to, text, client_message_id)])
        return result


async def test_batches_claimed_ahead_join_the_provider_call_under_way(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first batch of 3 (before any send is timed); the next is claimed while the call
    goes on and joins it, so 10 recipients take one call, and every result still
    lands on its own recipient."""
    await unpaced(ctx, tenant.session_id)
    broadcast_id = await create(client, tenant, il_numbers(10))
    worker = dispatcher(ctx, tuning=Tuning(first_claim=3))
    provider = _AsksForMoreOnceItIsClaimed(worker)
    monkeypatch.setattr(ctx.providers, "for_kind", lambda kind: provider)
    await worker.run_until_idle()
    async with ctx.database.transaction() as db:
        rows = (
            await db.execute(
                select(
                    WhatsAppBroadcastRecipient.status,
                    WhatsAppBroadcastRecipient.client_message_id,
                    WhatsAppBroadcastRecipient.provider_message_id,
                )
                .where(WhatsAppBroadcastRecipient.broadcast_id == broadcast_id)
                .order_by(WhatsAppBroadcastRecipient.id)
            )
        ).all()
    assert len(provider.calls) == 1
    assert provider.calls[0] == [client_id for _, client_id, _ in rows]
    assert all(status == "sent" for status, _, _ in rows)
    assert [provider_id for _, _, provider_id in rows] == [f"fake-{c}" for _, c, _ in rows]
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 10)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_batch_that_runs_out_early_does_not_wait_for_its_planned_next_claim(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """The next batch is claimed halfway through the current one by its measured pace; if
    the current one is done sooner (here its pace says 30 s a send), the slot claims
    the next at once instead of sleeping until that planned moment."""
    await unpaced(ctx, tenant.session_id)
    await create(client, tenant, il_numbers(6))
    worker = dispatcher(ctx)
    epoch = await _lease(ctx, tenant, holder=worker.worker_id)
    async with ctx.database.transaction() as db:
        (row,) = await LeaseRepository(db).get_sessions([tenant.session_id])
        first = (
            await ClaimRepository(db).claim_many(
                [ClaimRequest(tenant.session_id, epoch, 2)], worker.worker_id, ctx.clock.now()
            )
        )[tenant.session_id]
    runner = SlotRunner(worker, tenant.session_id, 0, epoch, row)
    runner.batches.seconds_per_send = 30.0
    runner.batches.queue(NextBatch(row, first, 2))
    runner.batches.todo.clear()  # as if both were sent
    batch = await asyncio.wait_for(runner.batches.next_batch(), timeout=10)
    # At 30 s a send, the 2 s a claim covers is one recipient: the next in line.
    assert batch is not None
    assert [c.recipient_id for c in batch.claimed] == [first[-1].recipient_id + 1]
