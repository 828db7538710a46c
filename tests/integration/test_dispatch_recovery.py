"""Crashes, lost leases and concurrency limits, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from tests.support.dispatch import (
    broadcast,
    counts_match_rows,
    create,
    dispatcher,
    drain,
    recipients,
    scenario,
    sends,
    unpaced,
)
from tests.support.providers import simulator_of
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.results import ResultRepository
from wabroadcast.dispatch.repository.rows import Result
from wabroadcast.dispatch.slot import LeaseLost, SlotRunner
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.providers.base import OutgoingMessage, SessionRef


async def claim_and_crash(ctx: AppContext, session_id: str, worker: str, send: bool) -> int:
    """What a worker killed mid-batch leaves: a lease, recipients ``sending``, maybe a send."""
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(session_id, 1, 1)
        epoch = await repo.acquire_slot(session_id, 0, worker, ctx.clock.now(), _ttl(ctx))
        assert epoch is not None
        # As the dispatcher does: one at a time unless repeats are harmless.
        limit = 10 if simulator_of(ctx).supports_client_message_id else 1
        claimed = await ClaimRepository(db).claim(
            session_id, holder=worker, epoch=epoch, now=ctx.clock.now(), limit=limit
        )
    if send:
        first = claimed[0]
        await simulator_of(ctx).send(
            SessionRef(session_id, 1, "simulator", {}),
            OutgoingMessage(first.phone, first.message, first.client_message_id),
        )
    return epoch


def _ttl(ctx: AppContext) -> timedelta:
    return timedelta(seconds=ctx.settings.lease_ttl_s)


async def test_crash_mid_batch_retries_with_the_same_message_id_and_never_sends_twice(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    await scenario(client, tenant, deliver_after_ms=None)
    broadcast_id = await create(client, tenant, il_numbers(3))
    await claim_and_crash(ctx, tenant.session_id, "dead-worker", send=True)
    await dispatcher(ctx).run_until_idle()  # the lease is still live: nothing is touched
    assert (await broadcast(client, tenant, broadcast_id))["sent_count"] == 0
    clock.advance(ctx.settings.lease_ttl_s + 1)
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"]) == ("completed", 3)
    log = (await sends(client, tenant))["items"]
    originals = [s for s in log if not s["repeat"]]
    repeats = [s for s in log if s["repeat"]]
    assert sorted(s["phone"] for s in originals) == il_numbers(3)
    assert len(repeats) == 1
    assert repeats[0]["provider_message_id"] == originals[0]["provider_message_id"]
    first = next(
        r for r in await recipients(client, tenant, broadcast_id) if r["phone"] == il_numbers(1)[0]
    )
    assert first["attempts"] == 2  # the crashed attempt counts; the retry is the second
    await counts_match_rows(ctx, broadcast_id)


async def test_without_idempotent_ids_an_unknown_outcome_fails_and_is_not_resent(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await unpaced(ctx, tenant.session_id)
    monkeypatch.setattr(simulator_of(ctx), "supports_client_message_id", False)
    broadcast_id = await create(client, tenant, il_numbers(3))
    await claim_and_crash(ctx, tenant.session_id, "dead-worker", send=True)
    clock.advance(ctx.settings.lease_ttl_s + 1)
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    # Only one recipient may be in flight per slot without idempotent ids.
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("partial", 2, 1)
    failed = await recipients(client, tenant, broadcast_id, "failed")
    assert failed[0]["error_code"] == "UNKNOWN_OUTCOME"
    assert not any(s["repeat"] for s in (await sends(client, tenant))["items"])


async def test_a_worker_that_lost_its_lease_cannot_record_over_the_new_holder(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    broadcast_id = await create(client, tenant, il_numbers(1))
    old_epoch = await claim_and_crash(ctx, tenant.session_id, "slow-worker", send=False)
    clock.advance(ctx.settings.lease_ttl_s + 1)
    await drain(ctx, clock)  # recovered and sent by the new holder
    rows = await recipients(client, tenant, broadcast_id)
    async with ctx.database.transaction() as db:
        touched = await ResultRepository(db).record(
            [
                Result(
                    rows[0]["recipient_id"],
                    broadcast_id,
                    old_epoch,
                    RecipientStatus.FAILED,
                    error_code="LATE",
                    error_message="late write from the old holder",
                )
            ],
            clock.now(),
        )
    assert touched == set()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("completed", 1, 0)
    assert (await recipients(client, tenant, broadcast_id))[0]["status"] == "sent"


async def test_renewal_fails_once_the_lease_was_taken(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(tenant.session_id, tenant.tenant_id, 1)
        first = await repo.acquire_slot(tenant.session_id, 0, "a", ctx.clock.now(), _ttl(ctx))
        assert (
            await repo.acquire_slot(tenant.session_id, 0, "b", ctx.clock.now(), _ttl(ctx)) is None
        )
    assert first is not None
    clock.advance(ctx.settings.lease_ttl_s + 1)
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        second = await repo.acquire_slot(tenant.session_id, 0, "b", ctx.clock.now(), _ttl(ctx))
        assert second is not None
        assert second > first
        now, ttl = ctx.clock.now(), _ttl(ctx)
        session_id = tenant.session_id
        # The old holder renews nothing, in a batch of its own or with a stranger's slot.
        assert await repo.renew_slots([(session_id, 0, first)], "a", now, ttl) == set()
        assert await repo.renew_slots([(session_id, 0, second)], "a", now, ttl) == set()
        assert await repo.renew_slots([(session_id, 0, second)], "b", now, ttl) == {
            (session_id, 0, second)
        }


async def test_one_renewal_extends_every_lease_held_and_only_those(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    ttl = _ttl(ctx)
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(tenant.session_id, tenant.tenant_id, 3)
        epochs = [
            await repo.acquire_slot(tenant.session_id, slot, "me", ctx.clock.now(), ttl)
            for slot in range(3)
        ]
        released = epochs[2]
        assert released is not None
        await repo.release_slot(tenant.session_id, 2, released)
    assert None not in epochs
    held = [(tenant.session_id, slot, epoch) for slot, epoch in enumerate(epochs) if epoch]
    clock.advance(ctx.settings.lease_ttl_s * 0.9)
    async with ctx.database.transaction() as db:
        renewed = await LeaseRepository(db).renew_slots(held, "me", ctx.clock.now(), ttl)
    assert renewed == set(held[:2])
    # Renewed leases outlive their first expiry: nobody else can take them then.
    clock.advance(ctx.settings.lease_ttl_s * 0.5)
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        assert await repo.acquire_slot(tenant.session_id, 0, "other", ctx.clock.now(), ttl) is None
        assert await repo.acquire_slot(tenant.session_id, 2, "other", ctx.clock.now(), ttl)


async def test_one_acquisition_takes_every_free_slot_of_many_sessions(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    other = await make_tenant(ctx, name="Other")
    ttl = _ttl(ctx)
    a, b = tenant.session_id, other.session_id
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(a, tenant.tenant_id, 2)
        await repo.ensure_slots(b, other.tenant_id, 2)
        held_by_other = await repo.acquire_slot(a, 1, "other", ctx.clock.now(), ttl)
    assert held_by_other is not None
    async with ctx.database.transaction() as db:
        taken = await LeaseRepository(db).acquire_slots(
            [(a, 0), (a, 1), (b, 0), (b, 1)], "me", ctx.clock.now(), ttl
        )
    # The held slot is skipped; every epoch is new within its session.
    assert set(taken) == {(a, 0), (b, 0), (b, 1)}
    assert taken[(a, 0)] > held_by_other
    assert taken[(b, 0)] != taken[(b, 1)]
    async with ctx.database.transaction() as db:
        again = await LeaseRepository(db).acquire_slots(
            [(a, 0), (a, 1), (b, 0), (b, 1)], "someone", ctx.clock.now(), ttl
        )
    assert again == {}
    # Once they expire, another worker takes them all, with epochs past every earlier one.
    clock.advance(ctx.settings.lease_ttl_s + 1)
    async with ctx.database.transaction() as db:
        later = await LeaseRepository(db).acquire_slots(
            [(a, 0), (a, 1), (b, 0), (b, 1)], "someone", ctx.clock.now(), ttl
        )
        renewed_by_old = await LeaseRepository(db).renew_slots(
            [(a, 0, taken[(a, 0)])], "me", ctx.clock.now(), ttl
        )
    assert set(later) == {(a, 0), (a, 1), (b, 0), (b, 1)}
    assert later[(a, 0)] > max(taken[(a, 0)], held_by_other)
    assert min(later[(b, 0)], later[(b, 1)]) > max(taken[(b, 0)], taken[(b, 1)])
    assert renewed_by_old == set()


async def test_the_dispatcher_renews_its_leases_and_tells_a_slot_that_lost_one(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    worker = dispatcher(ctx, "me")
    ttl = _ttl(ctx)
    async with ctx.database.transaction() as db:
        repo = LeaseRepository(db)
        await repo.ensure_slots(tenant.session_id, tenant.tenant_id, 2)
        taken = await repo.acquire_slots(
            [(tenant.session_id, 0), (tenant.session_id, 1)], "me", ctx.clock.now(), ttl
        )
    kept = SlotRunner(worker, tenant.session_id, 0, taken[(tenant.session_id, 0)])
    # Slot 1's lease expires and another worker takes it over.
    gone = SlotRunner(worker, tenant.session_id, 1, taken[(tenant.session_id, 1)])
    worker.held = {(r.session_id, r.slot): r for r in (kept, gone)}
    clock.advance(ctx.settings.lease_ttl_s / 2)
    async with ctx.database.transaction() as db:
        await LeaseRepository(db).renew_slots(
            [(tenant.session_id, 0, kept.epoch)], "me", ctx.clock.now(), ttl
        )
    clock.advance(ctx.settings.lease_ttl_s * 0.6)
    async with ctx.database.transaction() as db:
        other = await LeaseRepository(db).acquire_slots(
            [(tenant.session_id, 0), (tenant.session_id, 1)], "other", ctx.clock.now(), ttl
        )
    assert set(other) == {(tenant.session_id, 1)}
    await worker.renew_leases()
    assert (kept.lost, gone.lost) == (False, True)
    with pytest.raises(LeaseLost):
        await gone._keep_lease()


@pytest.mark.parametrize("max_concurrency", [1, 2])
async def test_in_flight_sends_never_exceed_max_concurrency_across_workers(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    max_concurrency: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ctx.settings, "claim_batch", 4)
    await unpaced(ctx, tenant.session_id, max_concurrency=max_concurrency)
    await scenario(client, tenant, latency_ms=20)
    broadcast_id = await create(client, tenant, il_numbers(40))
    workers = [dispatcher(ctx, f"w{i}") for i in range(4)]
    await asyncio.gather(*(w.run_until_idle() for w in workers))
    await drain(ctx, clock, workers)
    log = await sends(client, tenant)
    assert log["hwm"] == max_concurrency
    assert sorted(s["phone"] for s in log["items"]) == il_numbers(40)
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "completed"
    await counts_match_rows(ctx, broadcast_id)
