"""GET /api/whatsapp/metrics and the per-minute chart, against known rows on both databases."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest

from tests.support.dispatch import create, drain, scenario, unpaced
from tests.support.metrics_rows import Row, store_broadcast
from tests.support.tenants import START, TenantFixture, make_tenant
from wabroadcast.api.app import build_context, create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.metrics.service import sends_per_minute
from wabroadcast.tenants.service import TenantContext

URL = "/api/whatsapp/metrics"
MINUTE = timedelta(minutes=1)
FIVE_MINUTES = timedelta(minutes=5)
TICK = timedelta(microseconds=1)


async def get_metrics(client: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, Any]:
    response = await client.get(URL, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def numbers(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"generated_at", "cached"}}


def tenant_context(tenant: TenantFixture) -> TenantContext:
    return TenantContext(tenant.tenant_id, "test", "IL")


async def test_a_tenant_without_broadcasts_has_zeros(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    assert await get_metrics(client, tenant) == {
        "pending_count": 0,
        "sent_last_5m": 0,
        "failed_last_5m": 0,
        "delivered_last_5m": 0,
        "active_broadcasts": 0,
        "generated_at": "2026-11-28T12:00:00Z",
        "cached": False,
    }


async def test_pending_and_active_come_from_queued_running_and_paused_broadcasts(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    recent = START - MINUTE
    await store_broadcast(ctx, tenant, "queued", [Row("queued")] * 3)
    await store_broadcast(
        ctx,
        tenant,
        "running",
        [Row("queued"), Row("sending"), Row("sending"), Row("sent", sent_at=recent)],
    )
    await store_broadcast(
        ctx, tenant, "paused", [Row("queued"), Row("queued"), Row("failed", failed_at=recent)]
    )
    await store_broadcast(ctx, tenant, "completed", [Row("sent", sent_at=recent)] * 2)
    await store_broadcast(ctx, tenant, "cancelled", [Row("cancelled")] * 4)
    await store_broadcast(
        ctx,
        tenant,
        "partial",
        [Row("read", sent_at=recent, delivered_at=recent), Row("failed", failed_at=recent)],
    )
    assert numbers(await get_metrics(client, tenant)) == {
        "pending_count": 3 + 3 + 2,
        "active_broadcasts": 3,
        "sent_last_5m": 1 + 2 + 1,
        "delivered_last_5m": 1,
        "failed_last_5m": 2,
    }


async def test_the_five_minute_window_is_open_at_five_minutes_ago_and_closed_at_now(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    inside = [START - FIVE_MINUTES + TICK, START - timedelta(minutes=4, seconds=59), START]
    outside = [
        START - FIVE_MINUTES,  # exactly five minutes ago
        START - FIVE_MINUTES - TICK,
        START - timedelta(hours=1),
        START + TICK,  # in the future: a worker whose clock runs ahead
        START + MINUTE,
    ]
    times = inside + outside
    await store_broadcast(ctx, tenant, "completed", [Row("sent", sent_at=t) for t in times])
    await store_broadcast(
        ctx,
        tenant,
        "completed",
        [Row("delivered", sent_at=START - timedelta(hours=2), delivered_at=t) for t in times],
    )
    await store_broadcast(ctx, tenant, "failed", [Row("failed", failed_at=t) for t in times])
    assert numbers(await get_metrics(client, tenant)) == {
        "pending_count": 0,
        "active_broadcasts": 0,
        "sent_last_5m": 3,
        "delivered_last_5m": 3,
        "failed_last_5m": 3,
    }


async def test_events_count_when_they_happened_not_by_current_status(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    """Sent 4 minutes ago and read 1 minute ago: in sent and in delivered; an older send is not."""
    old = START - timedelta(minutes=30)
    await store_broadcast(
        ctx,
        tenant,
        "partial",
        [
            Row("read", sent_at=START - timedelta(minutes=4), delivered_at=START - MINUTE),
            Row("delivered", sent_at=old, delivered_at=START - MINUTE),
            Row("failed", sent_at=START - timedelta(minutes=2), failed_at=START - MINUTE),
            Row("failed", failed_at=old),
        ],
    )
    body = numbers(await get_metrics(client, tenant))
    assert (body["sent_last_5m"], body["delivered_last_5m"], body["failed_last_5m"]) == (2, 2, 1)


async def test_a_tenant_sees_only_its_own_numbers(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    other = await make_tenant(ctx, "Other shop")
    recent = START - MINUTE
    await store_broadcast(ctx, tenant, "running", [Row("queued"), Row("sent", sent_at=recent)])
    await store_broadcast(
        ctx,
        other,
        "running",
        [Row("queued")] * 5 + [Row("failed", failed_at=recent)] * 2 + [Row("sending")],
    )
    await store_broadcast(ctx, other, "queued", [Row("queued")])
    assert numbers(await get_metrics(client, tenant)) == {
        "pending_count": 1,
        "active_broadcasts": 1,
        "sent_last_5m": 1,
        "delivered_last_5m": 0,
        "failed_last_5m": 0,
    }
    assert numbers(await get_metrics(client, other)) == {
        "pending_count": 7,
        "active_broadcasts": 2,
        "sent_last_5m": 0,
        "delivered_last_5m": 0,
        "failed_last_5m": 2,
    }


async def test_answers_come_from_a_ten_second_cache_per_tenant(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    other = await make_tenant(ctx, "Other shop")
    await store_broadcast(ctx, tenant, "running", [Row("queued"), Row("sent", sent_at=START)])
    first = await get_metrics(client, tenant)
    assert (first["cached"], first["pending_count"], first["sent_last_5m"]) == (False, 1, 1)

    await store_broadcast(ctx, tenant, "queued", [Row("queued")] * 4)
    await store_broadcast(ctx, tenant, "completed", [Row("sent", sent_at=START)] * 2)
    clock.advance(9.999)
    again = await get_metrics(client, tenant)
    assert again == {**first, "cached": True}
    # The cache is per tenant: another tenant's first call is computed.
    assert (await get_metrics(client, other))["cached"] is False

    clock.advance(0.001)
    fresh = await get_metrics(client, tenant)
    assert fresh["cached"] is False
    assert (fresh["pending_count"], fresh["sent_last_5m"], fresh["active_broadcasts"]) == (5, 3, 2)
    assert fresh["generated_at"] == "2026-11-28T12:00:10Z"


async def test_a_clock_set_back_does_not_serve_a_future_cache_entry(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    await get_metrics(client, tenant)
    await store_broadcast(ctx, tenant, "queued", [Row("queued")])
    clock.advance(-1)
    body = await get_metrics(client, tenant)
    assert (body["cached"], body["pending_count"]) == (False, 1)


async def test_a_zero_cache_time_computes_every_answer(
    settings: Settings, clock: FrozenClock
) -> None:
    context = build_context(settings.model_copy(update={"metrics_cache_s": 0.0}), clock=clock)
    try:
        tenant = await make_tenant(context)
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await get_metrics(client, tenant))["cached"] is False
            await store_broadcast(context, tenant, "queued", [Row("queued")])
            second = await get_metrics(client, tenant)
            assert (second["cached"], second["pending_count"]) == (False, 1)
    finally:
        await context.database.dispose()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing bearer API key"),
        ({"Authorization": "Bearer wab_not-a-key"}, "Invalid API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Missing bearer API key"),
    ],
)
async def test_metrics_need_a_valid_api_key(
    client: httpx.AsyncClient, tenant: TenantFixture, headers: dict[str, str], message: str
) -> None:
    response = await client.get(URL, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "success": False,
        "error_code": "UNAUTHORIZED",
        "message": message,
        "details": {},
    }


async def test_metrics_after_a_real_broadcast_with_one_failure(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    await scenario(client, tenant, fail_numbers={"+972500000002": "NOT_ON_WHATSAPP"})
    await create(client, tenant, ["+972500000001", "+972500000002", "+972500000003"])
    before = await get_metrics(client, tenant)
    assert (before["pending_count"], before["active_broadcasts"]) == (3, 1)
    await drain(ctx, clock)
    clock.advance(10)
    after = numbers(await get_metrics(client, tenant))
    assert after == {
        "pending_count": 0,
        "active_broadcasts": 0,
        "sent_last_5m": 2,
        "delivered_last_5m": 0,
        "failed_last_5m": 1,
    }
    clock.advance(5 * 60 - 10)
    assert numbers(await get_metrics(client, tenant))["sent_last_5m"] == 0


async def test_sends_per_minute_has_every_minute_of_the_last_hour(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    clock.set(START + timedelta(seconds=30))  # 12:00:30, in the minute 12:00
    hour_start = START - timedelta(minutes=59)  # 11:01, the first minute shown
    await store_broadcast(
        ctx,
        tenant,
        "partial",
        [
            Row("sent", sent_at=START + timedelta(seconds=30)),  # now: in 12:00
            Row("sent", sent_at=START + timedelta(seconds=30) + TICK),  # future: left out
            Row("sent", sent_at=START),  # 12:00:00.000000 starts minute 12:00
            Row("delivered", sent_at=START - TICK, delivered_at=START),  # 11:59:59.999999
            Row("read", sent_at=START - timedelta(minutes=10, seconds=1), delivered_at=START),
            Row("sent", sent_at=hour_start),  # the oldest minute shown
            Row("sent", sent_at=hour_start - TICK),  # before it: left out
            Row("failed", failed_at=START - timedelta(minutes=10, seconds=59)),
            Row("failed", sent_at=START - timedelta(minutes=3), failed_at=START - MINUTE),
            Row("failed", failed_at=START - timedelta(hours=3)),
        ],
    )
    other = await make_tenant(ctx, "Other shop")
    await store_broadcast(ctx, other, "completed", [Row("sent", sent_at=START)] * 3)

    chart = await sends_per_minute(ctx, tenant_context(tenant))
    assert len(chart) == 60
    assert [point.minute for point in chart] == [
        hour_start + timedelta(minutes=i) for i in range(60)
    ]
    assert all(point.minute.tzinfo is UTC for point in chart)
    nonzero = {
        point.minute.strftime("%H:%M"): (point.sent, point.failed)
        for point in chart
        if point.sent or point.failed
    }
    assert nonzero == {
        "11:01": (1, 0),
        "11:49": (1, 1),
        "11:57": (1, 0),
        "11:59": (1, 1),
        "12:00": (2, 0),
    }


async def test_sends_per_minute_takes_a_chart_length(
    ctx: AppContext, tenant: TenantFixture
) -> None:
    await store_broadcast(ctx, tenant, "completed", [Row("sent", sent_at=START - MINUTE)])
    chart = await sends_per_minute(ctx, tenant_context(tenant), minutes=2)
    assert [(p.minute, p.sent, p.failed) for p in chart] == [
        (START - MINUTE, 1, 0),
        (START, 0, 0),
    ]
    for minutes in (0, 24 * 60 + 1):
        with pytest.raises(ValidationFailed):
            await sends_per_minute(ctx, tenant_context(tenant), minutes=minutes)


async def test_sends_per_minute_is_cached_per_tenant_and_length_like_the_metrics(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    who = tenant_context(tenant)
    await store_broadcast(ctx, tenant, "completed", [Row("sent", sent_at=START)])
    first = await sends_per_minute(ctx, who)
    await store_broadcast(ctx, tenant, "completed", [Row("sent", sent_at=START)] * 2)
    clock.advance(9.999)
    assert await sends_per_minute(ctx, who) == first
    assert (await sends_per_minute(ctx, who, minutes=1))[-1].sent == 3  # another length
    clock.advance(0.001)
    fresh = await sends_per_minute(ctx, who)
    assert (first[-1].sent, fresh[-1].sent) == (1, 3)
