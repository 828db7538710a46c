"""Never two broadcasts for one intention: content keys and client Idempotency-Keys."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import START, TenantFixture, make_tenant
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import IdempotencyRequest

URL = "/api/whatsapp/broadcasts"
BODY = {"message": "Flash sale", "recipients": ["0502345678", "0523456789"]}


async def post(
    client: httpx.AsyncClient, tenant: TenantFixture, body: object = BODY, **headers: str
) -> httpx.Response:
    return await client.post(URL, json=body, headers={**tenant.headers, **headers})


async def test_identical_request_returns_the_existing_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    first = await post(client, tenant)
    assert first.status_code == 202
    clock.advance(60)
    again = await post(
        client, tenant, {"message": "Flash sale", "recipients": ["+972523456789", "050-234-5678"]}
    )
    assert again.status_code == 200
    replay = again.json()
    assert replay["idempotent"] is True
    assert replay["broadcast_id"] == first.json()["broadcast_id"]
    assert replay["status"] == "queued"
    assert replay["queued_count"] == 2
    assert replay["total_recipients"] == 2
    assert replay["items"] == first.json()["items"]
    assert set(replay) == set(first.json())
    assert await row_counts(ctx) == (1, 2)


async def test_requests_straddling_a_bucket_boundary_are_still_one(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(START.replace(minute=4, second=59))  # 12:04:59, last second of a 5-minute bucket
    first = await post(client, tenant)
    clock.advance(2)  # 12:05:01, the next bucket
    second = await post(client, tenant)
    assert second.status_code == 200
    assert second.json()["broadcast_id"] == first.json()["broadcast_id"]
    clock.advance(9 * 60)  # 12:14:01, 9 m 2 s after the first: still inside 10 minutes
    third = await post(client, tenant)
    assert third.json()["broadcast_id"] == first.json()["broadcast_id"]
    assert await row_counts(ctx) == (1, 2)


async def test_after_ten_minutes_the_same_content_is_a_new_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    first = await post(client, tenant)
    clock.advance(10 * 60 + 1)
    second = await post(client, tenant)
    assert second.status_code == 202
    assert second.json()["idempotent"] is False
    assert second.json()["broadcast_id"] != first.json()["broadcast_id"]
    assert await row_counts(ctx) == (2, 4)


@pytest.mark.parametrize(
    "change",
    [
        {"message": "Flash sale!"},
        {"recipients": ["0502345678"]},
        {"allow_duplicate": True},
    ],
)
async def test_different_content_or_allow_duplicate_creates_a_new_one(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, change: dict[str, object]
) -> None:
    await post(client, tenant)
    second = await post(client, tenant, {**BODY, **change})
    assert second.status_code == 202
    assert second.json()["idempotent"] is False
    assert (await row_counts(ctx))[0] == 2


async def test_content_keys_are_per_tenant(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    a = await post(client, tenant)
    b = await post(client, other)
    assert b.status_code == 202
    assert a.json()["broadcast_id"] != b.json()["broadcast_id"]


async def test_twenty_identical_requests_at_once_make_one_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    body = {"message": "Concurrent", "recipients": il_numbers(200)}
    responses = await asyncio.gather(*(post(client, tenant, body) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [202]
    assert len({r.json()["broadcast_id"] for r in responses}) == 1
    assert await row_counts(ctx) == (1, 200)


# --- Idempotency-Key header ----------------------------------------------------


async def test_same_key_same_body_replays_the_stored_response(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    first = await post(client, tenant, **{"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    again = await post(client, tenant, **{"Idempotency-Key": "order-42"})
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {**first.json(), "idempotent": True}
    assert await row_counts(ctx) == (1, 2)


async def test_quoted_key_form_is_the_same_key(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    first = await post(client, tenant, **{"Idempotency-Key": '"order-7"'})
    again = await post(client, tenant, **{"Idempotency-Key": "order-7"})
    assert again.json()["broadcast_id"] == first.json()["broadcast_id"]


async def test_same_key_different_body_is_422_mismatch(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await post(client, tenant, **{"Idempotency-Key": "k1"})
    response = await post(
        client, tenant, {**BODY, "message": "Other text"}, **{"Idempotency-Key": "k1"}
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert await row_counts(ctx) == (1, 2)


async def test_key_bypasses_content_dedupe(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await post(client, tenant)
    response = await post(client, tenant, **{"Idempotency-Key": "fresh"})
    assert response.status_code == 202
    assert (await row_counts(ctx))[0] == 2


async def test_key_in_flight_is_409(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await client.put(
        "/api/whatsapp/simulator", json={"status_delay_ms": 1500}, headers=tenant.headers
    )
    first = asyncio.create_task(post(client, tenant, **{"Idempotency-Key": "slow"}))
    for _ in range(200):
        async with ctx.database.transaction() as session:
            claimed = (await session.execute(select(IdempotencyRequest))).scalars().first()
        if claimed is not None:
            break
        await asyncio.sleep(0.01)
    assert claimed is not None
    assert claimed.state == "in_flight"
    second = await post(client, tenant, **{"Idempotency-Key": "slow"})
    assert second.status_code == 409
    assert second.json()["error_code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert second.headers["Retry-After"] == "1"
    assert (await first).status_code == 202
    assert await row_counts(ctx) == (1, 2)


async def test_failed_request_releases_its_key(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await client.put("/api/whatsapp/simulator", json={"connected": False}, headers=tenant.headers)
    refused = await post(client, tenant, **{"Idempotency-Key": "retry-me"})
    assert refused.status_code == 503
    await client.put("/api/whatsapp/simulator", json={"connected": True}, headers=tenant.headers)
    accepted = await post(client, tenant, **{"Idempotency-Key": "retry-me"})
    assert accepted.status_code == 202
    assert accepted.json()["idempotent"] is False


async def test_keys_expire_after_24_hours(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    first = await post(client, tenant, **{"Idempotency-Key": "daily"})
    clock.advance(23 * 3600)
    assert (
        await post(client, tenant, {**BODY, "message": "x"}, **{"Idempotency-Key": "daily"})
    ).status_code == 422
    clock.advance(3600 + 1)
    reused = await post(client, tenant, {**BODY, "message": "x"}, **{"Idempotency-Key": "daily"})
    assert reused.status_code == 202
    assert reused.json()["broadcast_id"] != first.json()["broadcast_id"]


async def test_keys_are_per_tenant(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    a = await post(client, tenant, **{"Idempotency-Key": "shared"})
    b = await post(client, other, {**BODY, "message": "different"}, **{"Idempotency-Key": "shared"})
    assert b.status_code == 202
    assert a.json()["broadcast_id"] != b.json()["broadcast_id"]


@pytest.mark.parametrize("key", [b"", b"has space", "é".encode(), b"x" * 256])
async def test_malformed_key_is_422(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, key: bytes
) -> None:
    headers = [(k.encode(), v.encode()) for k, v in tenant.headers.items()]
    headers.append((b"Idempotency-Key", key))
    response = await client.post(URL, json=BODY, headers=headers)
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert await row_counts(ctx) == (0, 0)
