"""The dispatcher in-process on both databases: outcomes, retries, pauses, holds, cancel."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from tests.support.dispatch import (
    FINAL,
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
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def test_acceptance_partial_failure(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    """The seed's acceptance test: 3 recipients, 1 fails -> partial, sent 2, failed 1."""
    numbers = il_numbers(3)
    await scenario(client, tenant, fail_numbers={numbers[1]: "NOT_ON_WHATSAPP"})
    broadcast_id = await create(client, tenant, numbers)
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "queued"
    with capture_logs() as logs:
        await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"], b["queued_count"]) == (
        "partial",
        2,
        1,
        0,
    )
    assert b["started_at"] is not None
    assert b["finished_at"] is not None
    failed = await recipients(client, tenant, broadcast_id, "failed")
    assert [(r["phone"], r["error_code"], r["error_message"]) for r in failed] == [
        (numbers[1], "NOT_ON_WHATSAPP", "This number is not on WhatsApp.")
    ]
    sent = await recipients(client, tenant, broadcast_id, "sent")
    assert sorted(r["phone"] for r in sent) == [numbers[0], numbers[2]]
    assert all(r["sent_at"] and r["attempts"] == 1 for r in sent)
    log = await sends(client, tenant)
    assert sorted(s["phone"] for s in log["items"]) == numbers
    assert not any(s["repeat"] for s in log["items"])
    events = [e["event"] for e in logs]
    assert events.count("[WA_BROADCAST] running") == 1
    assert events.count("[WA_BROADCAST] finished") == 1
    attempts = [e for e in logs if e["event"] == "[WA_SEND] attempt"]
    assert len(attempts) == 3
    assert all(e["broadcast_id"] == broadcast_id and "*" in e["phone"] for e in attempts)
    finished = next(e for e in logs if e["event"] == "[WA_BROADCAST] finished")
    assert (finished["sent_count"], finished["failed_count"], finished["queued_count"]) == (2, 1, 0)
    await counts_match_rows(ctx, broadcast_id)


async def test_all_sent_is_completed_and_none_sent_is_failed(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    ok = await create(client, tenant, il_numbers(4), "all good")
    await drain(ctx, clock)
    assert (await broadcast(client, tenant, ok))["status"] == "completed"
    bad = il_numbers(2, start=10)
    await scenario(client, tenant, fail_numbers=dict.fromkeys(bad, "INVALID_NUMBER"))
    failed = await create(client, tenant, bad, "all bad")
    await drain(ctx, clock)
    b = await broadcast(client, tenant, failed)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("failed", 0, 2)


async def test_transient_failures_are_retried_until_sent_never_twice(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await scenario(client, tenant, fail_rate=0.3)
    broadcast_id = await create(client, tenant, il_numbers(60))
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("completed", 60, 0)
    rows = await recipients(client, tenant, broadcast_id)
    assert max(r["attempts"] for r in rows) > 1  # some really were retried
    assert all(r["attempts"] <= ctx.settings.max_attempts for r in rows)
    log = await sends(client, tenant)
    delivered = [s for s in log["items"] if s["outcome"] == "sent"]
    assert sorted(s["phone"] for s in delivered) == il_numbers(60)  # each exactly once
    await counts_match_rows(ctx, broadcast_id)


async def test_retries_stop_at_the_attempt_limit(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await scenario(client, tenant, fail_rate=1.0)
    broadcast_id = await create(client, tenant, il_numbers(2))
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["failed_count"]) == ("failed", 2)
    for r in await recipients(client, tenant, broadcast_id):
        assert r["attempts"] == ctx.settings.max_attempts
        assert r["error_code"] == "SERVER_ERROR"
        assert "Gave up after 5 attempts" in str(r["error_message"])
    assert len((await sends(client, tenant))["items"]) == 2 * ctx.settings.max_attempts


async def test_account_level_error_pauses_and_sends_nothing_more(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(6)
    await scenario(client, tenant, fail_numbers={numbers[2]: "ACCOUNT_RESTRICTED"})
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert b["status"] == "paused"
    assert "restricted" in str(b["status_reason"])
    assert b["sent_count"] == 2
    assert b["queued_count"] == 4
    assert len((await sends(client, tenant))["items"]) == 3
    clock.advance(3600)
    await dispatcher(ctx).run_until_idle()
    assert len((await sends(client, tenant))["items"]) == 3
    held = [r for r in await recipients(client, tenant, broadcast_id) if r["phone"] == numbers[2]]
    assert (held[0]["status"], held[0]["attempts"], held[0]["error_code"]) == (
        "queued",
        0,
        "ACCOUNT_RESTRICTED",
    )
    await counts_match_rows(ctx, broadcast_id)


async def test_a_paused_broadcast_resumes_and_sends_what_it_held(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(6)
    await scenario(client, tenant, fail_numbers={numbers[2]: "SPAM_FLAGGED"})
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "paused"
    # The account is fine again.
    await scenario(client, tenant, fail_numbers={})
    url = f"/api/whatsapp/broadcasts/{broadcast_id}/resume"
    resumed = await client.post(url, headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert (body["status"], body["status_reason"], body["queued_count"]) == ("running", None, 4)
    again = await client.post(url, headers=tenant.headers)
    assert (again.status_code, again.json()["status"]) == (200, "running")
    clock.advance(60)  # past the hold of the recipient that met the error
    await dispatcher(ctx).run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["queued_count"], b["failed_count"]) == (
        "completed",
        6,
        0,
        0,
    )
    log = (await sends(client, tenant))["items"]
    delivered = sorted(s["phone"] for s in log if not s["repeat"] and s["outcome"] == "sent")
    assert delivered == sorted(numbers)
    finished = await client.post(url, headers=tenant.headers)
    assert (finished.status_code, finished.json()["error_code"]) == (409, "BROADCAST_FINISHED")
    missing = await client.post("/api/whatsapp/broadcasts/999999/resume", headers=tenant.headers)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "BROADCAST_NOT_FOUND")
    await counts_match_rows(ctx, broadcast_id)


async def test_disconnect_holds_recipients_and_reconnect_resumes(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(5))
    await scenario(client, tenant, connected=False)
    for _ in range(3):
        await dispatcher(ctx).run_until_idle()
        clock.advance(60)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["queued_count"], b["failed_count"], b["sent_count"]) == (
        "running",
        5,
        0,
        0,
    )
    assert all(r["attempts"] == 0 for r in await recipients(client, tenant, broadcast_id))
    await scenario(client, tenant, connected=True)
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"]) == ("completed", 5)


async def test_cancel_stops_queued_recipients(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(5))
    response = await client.post(
        f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancelled_count"]) == ("cancelled", 5)
    again = await client.post(
        f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers
    )
    assert again.status_code == 200
    await drain(ctx, clock)
    assert (await sends(client, tenant))["items"] == []
    assert {r["status"] for r in await recipients(client, tenant, broadcast_id)} == {"cancelled"}
    done = await create(client, tenant, il_numbers(1, start=50), "done")
    await drain(ctx, clock)
    finished = await client.post(f"/api/whatsapp/broadcasts/{done}/cancel", headers=tenant.headers)
    assert finished.status_code == 409
    assert finished.json()["error_code"] == "BROADCAST_FINISHED"
    await counts_match_rows(ctx, broadcast_id)


async def test_oldest_broadcast_goes_first(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    first = await create(client, tenant, il_numbers(3), "first")
    second = await create(client, tenant, il_numbers(3, start=10), "second")
    await drain(ctx, clock)
    order = [s["phone"] for s in (await sends(client, tenant))["items"]]
    assert order == il_numbers(3) + il_numbers(3, start=10)
    for broadcast_id in (first, second):
        assert (await broadcast(client, tenant, broadcast_id))["status"] in FINAL


async def test_a_worker_purges_expired_idempotency_keys(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    from sqlalchemy import func, select

    from wabroadcast.db.models import IdempotencyRequest

    async def keys() -> int:
        async with ctx.database.transaction() as session:
            count = await session.execute(select(func.count()).select_from(IdempotencyRequest))
            return int(count.scalar_one())

    headers = {**tenant.headers, "Idempotency-Key": "old"}
    body = {"message": "hi", "recipients": il_numbers(1)}
    assert (
        await client.post("/api/whatsapp/broadcasts", json=body, headers=headers)
    ).status_code == 202
    await dispatcher(ctx).run_until_idle()
    assert await keys() == 1  # still within its 24 hours
    clock.advance(24 * 3600 + 1)
    await dispatcher(ctx).run_until_idle()
    assert await keys() == 0
