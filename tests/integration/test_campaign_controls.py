"""Operator controls on both databases: pause by hand, and retry failed recipients."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.support.dispatch import (
    URL,
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
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture
from wabroadcast.broadcasts.control import PAUSED_BY_OPERATOR
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcastRecipient
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.results import ResultRepository
from wabroadcast.dispatch.repository.rows import Claimed, Result
from wabroadcast.domain.status import RecipientStatus


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def post(
    client: httpx.AsyncClient, tenant: TenantFixture, path: str, body: object = None
) -> httpx.Response:
    if body is None:
        return await client.post(f"{URL}/{path}", headers=tenant.headers)
    return await client.post(f"{URL}/{path}", json=body, headers=tenant.headers)


def counts(b: dict[str, Any]) -> tuple[str, int, int, int]:
    return b["status"], b["queued_count"], b["sent_count"], b["failed_count"]


async def test_pause_starts_nothing_new_and_resume_sends_the_rest(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(5)
    broadcast_id = await create(client, tenant, numbers)
    paused = await post(client, tenant, f"{broadcast_id}/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["status_reason"]) == (
        "paused",
        PAUSED_BY_OPERATOR,
    )
    # The answer says why it waits, like a read of it does.
    assert (paused.json()["waiting_reason"], paused.json()["estimated_finish_at"]) == (
        "paused",
        None,
    )
    # Pausing again changes nothing.
    again = await post(client, tenant, f"{broadcast_id}/pause")
    assert (again.status_code, again.json()["status"]) == (200, "paused")
    for _ in range(3):
        await dispatcher(ctx).run_until_idle()
        clock.advance(3600)
    assert (await sends(client, tenant))["items"] == []
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("paused", 5, 0, 0)
    await counts_match_rows(ctx, broadcast_id)

    resumed = await post(client, tenant, f"{broadcast_id}/resume")
    # Nothing was sent yet: back to queued, the reason cleared.
    assert (resumed.json()["status"], resumed.json()["status_reason"]) == ("queued", None)
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("completed", 0, 5, 0)
    log = (await sends(client, tenant))["items"]
    assert sorted(s["phone"] for s in log) == numbers
    assert not any(s["repeat"] for s in log)
    await counts_match_rows(ctx, broadcast_id)

    finished = await post(client, tenant, f"{broadcast_id}/pause")
    assert (finished.status_code, finished.json()["error_code"]) == (409, "BROADCAST_FINISHED")
    missing = await post(client, tenant, "999999/pause")
    assert (missing.status_code, missing.json()["error_code"]) == (404, "BROADCAST_NOT_FOUND")


async def test_a_pause_mid_broadcast_holds_the_rest_until_resumed(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    """An account-level pause stops the first run; the operator's pause keeps that reason
    and the broadcast holds its recipients; resume sends each of them once."""
    numbers = il_numbers(6)
    await scenario(client, tenant, fail_numbers={numbers[2]: "ACCOUNT_RESTRICTED"})
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert b["status"] == "paused"
    reason = b["status_reason"]
    paused = await post(client, tenant, f"{broadcast_id}/pause")
    assert (paused.json()["status"], paused.json()["status_reason"]) == ("paused", reason)
    await scenario(client, tenant, fail_numbers={})
    running = await post(client, tenant, f"{broadcast_id}/resume")
    assert running.json()["status"] == "running"
    assert running.json()["waiting_reason"] is None
    assert running.json()["estimated_finish_at"] is not None
    # Paused by hand while running: nothing more goes out.
    assert (await post(client, tenant, f"{broadcast_id}/pause")).json()["status_reason"] == (
        PAUSED_BY_OPERATOR
    )
    before = len((await sends(client, tenant))["items"])
    clock.advance(3600)
    await dispatcher(ctx).run_until_idle()
    assert len((await sends(client, tenant))["items"]) == before
    await post(client, tenant, f"{broadcast_id}/resume")
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("completed", 0, 6, 0)
    log = (await sends(client, tenant))["items"]
    delivered = sorted(s["phone"] for s in log if s["outcome"] == "sent" and not s["repeat"])
    assert delivered == numbers
    await counts_match_rows(ctx, broadcast_id)


async def test_retry_failed_requeues_failures_that_may_pass_with_new_ids(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(6)
    await scenario(
        client,
        tenant,
        fail_numbers={
            numbers[0]: "NOT_ON_WHATSAPP",
            numbers[1]: "INVALID_NUMBER",
            numbers[2]: "RATE_LIMITED",
            numbers[3]: "SERVER_ERROR",
        },
    )
    broadcast_id = await create(client, tenant, numbers)
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert counts(b) == ("partial", 0, 2, 4)
    first_ids = {s["client_message_id"] for s in (await sends(client, tenant))["items"]}
    # WhatsApp is fine again, but the two numbers still are not.
    await scenario(
        client,
        tenant,
        fail_numbers={numbers[0]: "NOT_ON_WHATSAPP", numbers[1]: "INVALID_NUMBER"},
    )

    # Only codes that never pass (and one nobody has): nothing to do, nothing changes.
    none = await post(
        client, tenant, f"{broadcast_id}/retry-failed", {"error_codes": ["NOT_ON_WHATSAPP", "X"]}
    )
    assert (none.status_code, none.json()) == (200, {"requeued": 0})
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("partial", 0, 2, 4)

    retried = await post(client, tenant, f"{broadcast_id}/retry-failed", {})
    assert (retried.status_code, retried.json()) == (200, {"requeued": 2})
    b = await broadcast(client, tenant, broadcast_id)
    assert counts(b) == ("running", 2, 2, 2)
    assert b["finished_at"] is None
    await counts_match_rows(ctx, broadcast_id)
    queued = await recipients(client, tenant, broadcast_id, "queued")
    assert sorted(r["phone"] for r in queued) == numbers[2:4]
    # The last error stays readable until the next attempt's result.
    assert {r["error_code"] for r in queued} == {"RATE_LIMITED", "SERVER_ERROR"}
    assert all(r["failed_at"] is None for r in queued)

    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert counts(b) == ("partial", 0, 4, 2)
    assert b["finished_at"] is not None
    await counts_match_rows(ctx, broadcast_id)
    resent = [
        s for s in (await sends(client, tenant))["items"] if s["client_message_id"] not in first_ids
    ]
    assert sorted(s["phone"] for s in resent) == numbers[2:4]
    assert all(s["outcome"] == "sent" and not s["repeat"] for s in resent)
    attempts = ctx.settings.max_attempts
    assert {s["client_message_id"].rsplit("-", 1)[1] for s in resent} == {str(attempts + 1)}
    failed = await recipients(client, tenant, broadcast_id, "failed")
    assert sorted(r["error_code"] for r in failed) == ["INVALID_NUMBER", "NOT_ON_WHATSAPP"]

    # Only failures that never pass are left.
    assert (await post(client, tenant, f"{broadcast_id}/retry-failed")).json() == {"requeued": 0}


async def test_retry_failed_takes_only_the_codes_named(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(3)
    await scenario(
        client, tenant, fail_numbers={numbers[0]: "RATE_LIMITED", numbers[1]: "SERVER_ERROR"}
    )
    broadcast_id = await create(client, tenant, numbers)
    await drain(ctx, clock)
    await scenario(client, tenant, fail_numbers={})
    named = await post(
        client, tenant, f"{broadcast_id}/retry-failed", {"error_codes": ["RATE_LIMITED"]}
    )
    assert named.json() == {"requeued": 1}
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("partial", 0, 2, 1)
    everything = await post(client, tenant, f"{broadcast_id}/retry-failed", {"error_codes": []})
    assert everything.json() == {"requeued": 1}
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("completed", 0, 3, 0)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_failed_broadcast_runs_again_and_unknown_outcomes_only_when_named(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(2)
    await scenario(client, tenant, fail_numbers=dict.fromkeys(numbers, "SERVER_ERROR"))
    broadcast_id = await create(client, tenant, numbers)
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("failed", 0, 0, 2)
    # One of them ended with an unknown outcome: WhatsApp may have it already.
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppBroadcastRecipient)
            .where(WhatsAppBroadcastRecipient.phone == numbers[0])
            .values(error_code="UNKNOWN_OUTCOME")
        )
    await scenario(client, tenant, fail_numbers={})
    default = await post(client, tenant, f"{broadcast_id}/retry-failed")
    assert default.json() == {"requeued": 1}
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "running"
    named = await post(
        client, tenant, f"{broadcast_id}/retry-failed", {"error_codes": ["UNKNOWN_OUTCOME"]}
    )
    assert named.json() == {"requeued": 1}
    await counts_match_rows(ctx, broadcast_id)
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("completed", 0, 2, 0)
    await counts_match_rows(ctx, broadcast_id)


async def test_retry_failed_refuses_cancelled_unknown_and_malformed(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(2))
    assert (await post(client, tenant, f"{broadcast_id}/cancel")).status_code == 200
    cancelled = await post(client, tenant, f"{broadcast_id}/retry-failed")
    assert (cancelled.status_code, cancelled.json()["error_code"]) == (409, "BROADCAST_FINISHED")
    missing = await post(client, tenant, "999999/retry-failed")
    assert (missing.status_code, missing.json()["error_code"]) == (404, "BROADCAST_NOT_FOUND")
    for body in ({"error_codes": "RATE_LIMITED"}, {"error_codes": [""]}, {"other": 1}):
        bad = await post(client, tenant, f"{broadcast_id}/retry-failed", body)
        assert (bad.status_code, bad.json()["error_code"]) == (422, "VALIDATION_ERROR"), body


async def _claim(ctx: AppContext, tenant: TenantFixture, limit: int) -> tuple[int, list[Claimed]]:
    """``limit`` recipients claimed (``sending``) under a lease of our own: (epoch, claims)."""
    async with ctx.database.transaction() as db:
        leases = LeaseRepository(db)
        await leases.ensure_slots(tenant.session_id, tenant.tenant_id, 1)
        epoch = await leases.acquire_slot(
            tenant.session_id, 0, "me", ctx.clock.now(), timedelta(seconds=60)
        )
    assert epoch is not None
    async with ctx.database.transaction() as db:
        claimed = await ClaimRepository(db).claim(
            tenant.session_id, holder="me", epoch=epoch, now=ctx.clock.now(), limit=limit
        )
    return epoch, claimed


async def _sent(ctx: AppContext, epoch: int, claimed: list[Claimed]) -> None:
    """The claimed sends come back accepted, written as the dispatcher writes them."""
    worker = dispatcher(ctx)
    async with ctx.database.transaction() as db:
        results = [
            Result(c.recipient_id, c.broadcast_id, epoch, RecipientStatus.SENT, f"m-{c.phone}")
            for c in claimed
        ]
        touched = await ResultRepository(db).record(results, ctx.clock.now())
        await worker.close_out(db, touched)


async def test_recipients_claimed_before_a_pause_finish_and_nothing_new_is_claimed(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(5)
    broadcast_id = await create(client, tenant, numbers)
    epoch, claimed = await _claim(ctx, tenant, 2)
    assert len(claimed) == 2
    paused = (await post(client, tenant, f"{broadcast_id}/pause")).json()
    assert (paused["status"], paused["queued_count"]) == ("paused", 5)  # queued or sending
    await _sent(ctx, epoch, claimed)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["queued_count"]) == ("paused", 2, 3)
    clock.advance(600)  # our lease is long gone: the worker may take the slot
    await dispatcher(ctx).run_until_idle()
    assert (await sends(client, tenant))["items"] == []
    assert (await broadcast(client, tenant, broadcast_id))["queued_count"] == 3
    await counts_match_rows(ctx, broadcast_id)
    await post(client, tenant, f"{broadcast_id}/resume")
    await drain(ctx, clock)
    assert counts(await broadcast(client, tenant, broadcast_id)) == ("completed", 0, 5, 0)
    assert sorted(s["phone"] for s in (await sends(client, tenant))["items"]) == numbers[2:]
    await counts_match_rows(ctx, broadcast_id)


async def test_a_paused_broadcast_whose_last_sends_finish_ends_from_its_counts(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(3))
    epoch, claimed = await _claim(ctx, tenant, 3)
    assert (await post(client, tenant, f"{broadcast_id}/pause")).json()["status"] == "paused"
    await _sent(ctx, epoch, claimed)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["finished_at"] is not None) == ("completed", 3, True)
    await counts_match_rows(ctx, broadcast_id)
