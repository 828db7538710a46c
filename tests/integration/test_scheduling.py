"""Scheduled broadcasts on both databases: nothing is sent before ``send_at``, the worker
queues them once it has come, a cancel while scheduled sends nothing, bad times are 422."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.support.dispatch import (
    URL,
    broadcast,
    counts_match_rows,
    dispatcher,
    drain,
    sends,
    unpaced,
)
from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


def at(clock: FrozenClock, seconds: float) -> str:
    """``seconds`` from the clock's now, spelled with a +02:00 offset."""
    return (
        (clock.now() + timedelta(seconds=seconds))
        .astimezone(timezone(timedelta(hours=2)))
        .isoformat()
    )


async def schedule(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    numbers: list[str],
    send_at: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        URL,
        json={"message": "later", "recipients": numbers, "send_at": send_at},
        headers={**tenant.headers, **(headers or {})},
    )


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_nothing_is_sent_before_send_at_and_all_after_it(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(3)
    send_at = at(clock, 3600)
    response = await schedule(client, tenant, numbers, send_at)
    assert response.status_code == 202, response.text
    proof: dict[str, Any] = response.json()
    assert proof["status"] == "scheduled"
    assert utc(proof["send_at"]) == utc(send_at)
    assert proof["queued_count"] == 3
    broadcast_id = proof["broadcast_id"]

    worker = dispatcher(ctx)
    for _ in range(3):
        await worker.run_until_idle()
        clock.advance(1000)  # 3000 s: still before send_at
    shown = await broadcast(client, tenant, broadcast_id)
    assert shown["status"] == "scheduled"
    assert utc(shown["send_at"]) == utc(send_at)
    assert shown["queued_at"] is None
    assert (await sends(client, tenant))["items"] == []

    clock.advance(600)  # past send_at
    await worker.tick()  # one pass queues it (and claims it)
    assert (await broadcast(client, tenant, broadcast_id))["status"] in {"queued", "running"}
    await drain(ctx, clock, [worker])
    done = await broadcast(client, tenant, broadcast_id)
    assert (done["status"], done["sent_count"]) == ("completed", 3)
    assert done["queued_at"] is not None
    log = (await sends(client, tenant))["items"]
    assert sorted(s["phone"] for s in log) == numbers
    await counts_match_rows(ctx, broadcast_id)


async def test_cancel_while_scheduled_sends_nothing_ever(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    response = await schedule(client, tenant, il_numbers(2), at(clock, 60))
    broadcast_id = response.json()["broadcast_id"]
    paused = await client.post(f"{URL}/{broadcast_id}/pause", headers=tenant.headers)
    assert (paused.status_code, paused.json()["error_code"]) == (
        409,
        "INVALID_STATUS_TRANSITION",
    )
    cancelled = await client.post(f"{URL}/{broadcast_id}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancelled_count"]) == ("cancelled", 2)
    clock.advance(3600)
    await dispatcher(ctx).run_until_idle()
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "cancelled"
    assert (await sends(client, tenant))["items"] == []
    await counts_match_rows(ctx, broadcast_id)


@pytest.mark.parametrize(
    "send_at",
    [
        pytest.param(-60, id="past"),
        pytest.param(91 * 86400, id="over-90-days"),
        pytest.param("naive", id="naive"),
        pytest.param("not a time", id="garbage"),
    ],
)
async def test_bad_send_at_is_422_and_stores_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    send_at: int | str,
) -> None:
    before = await row_counts(ctx)
    if send_at == "naive":
        value = (clock.now() + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    elif isinstance(send_at, int):
        value = at(clock, send_at)
    else:
        value = send_at
    response = await schedule(client, tenant, il_numbers(2), value, {"Idempotency-Key": "k1"})
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert "send_at" in response.json()["message"]
    assert await row_counts(ctx) == before


async def test_edges_of_the_window_are_accepted(
    client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    # A few seconds late is taken (and sent on the next pass); exactly 90 days ahead too.
    late = await schedule(client, tenant, il_numbers(1), at(clock, -2))
    assert (late.status_code, late.json()["status"]) == (202, "scheduled")
    far = await schedule(client, tenant, il_numbers(2), at(clock, 90 * 86400))
    assert (far.status_code, far.json()["status"]) == (202, "scheduled")


async def test_same_scheduled_request_is_one_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    numbers = il_numbers(2)
    send_at = at(clock, 600)
    first = await schedule(client, tenant, numbers, send_at)
    again = await schedule(client, tenant, numbers, send_at)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["broadcast_id"] == first.json()["broadcast_id"]
    assert (again.json()["status"], again.json()["idempotent"]) == ("scheduled", True)
    assert utc(again.json()["send_at"]) == utc(send_at)
    # Another time is another broadcast.
    other = await schedule(client, tenant, numbers, at(clock, 1200))
    assert other.status_code == 202
    assert other.json()["broadcast_id"] != first.json()["broadcast_id"]

    keyed = await schedule(client, tenant, il_numbers(3), send_at, {"Idempotency-Key": "s-1"})
    replay = await schedule(client, tenant, il_numbers(3), send_at, {"Idempotency-Key": "s-1"})
    assert keyed.status_code == 202, keyed.text
    assert replay.json()["broadcast_id"] == keyed.json()["broadcast_id"]
    assert (replay.json()["status"], replay.json()["idempotent"]) == ("scheduled", True)
    # The same key with another time is refused, like any other body.
    clash = await schedule(
        client, tenant, il_numbers(3), at(clock, 900), {"Idempotency-Key": "s-1"}
    )
    assert (clash.status_code, clash.json()["error_code"]) == (422, "IDEMPOTENCY_KEY_MISMATCH")
