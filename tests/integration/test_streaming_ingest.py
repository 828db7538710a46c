"""Long lists are normalized chunk by chunk while earlier chunks are inserted.

The chunk size is shrunk to 3 here so that small lists take the streaming path;
the promises are the same as for the one-shot path.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TenantFixture
from wabroadcast.broadcasts import create
from wabroadcast.broadcasts.repository.broadcasts import BroadcastRepository
from wabroadcast.context import AppContext

URL = "/api/whatsapp/broadcasts"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create, "STREAM_CHUNK", 3)


async def post(
    client: httpx.AsyncClient, tenant: TenantFixture, body: object, **headers: str
) -> httpx.Response:
    return await client.post(URL, json=body, headers={**tenant.headers, **headers})


async def test_streamed_list_gives_the_same_proof_and_rows(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    recipients = [*il_numbers(5), "12", "0500000001", "abc", *il_numbers(3, start=5), "0500000007"]
    response = await post(client, tenant, {"message": "stream", "recipients": recipients})
    assert response.status_code == 202
    proof = response.json()
    assert proof["total_recipients"] == proof["queued_count"] == 8
    assert proof["duplicates_removed"] == 2
    assert proof["invalid_recipients"] == [
        {"input": "12", "reason": "too_short"},
        {"input": "abc", "reason": "invalid_format"},
    ]
    assert [i["phone"] for i in proof["items"]] == il_numbers(8)
    assert await row_counts(ctx) == (1, 8)
    stored = (await client.get(f"{URL}/{proof['broadcast_id']}", headers=tenant.headers)).json()
    assert (stored["status"], stored["total_recipients"], stored["invalid_recipients_count"]) == (
        "queued",
        8,
        2,
    )


async def test_streamed_all_invalid_is_400_and_leaves_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await post(client, tenant, {"message": "x", "recipients": ["1", "2", "3", "4", "5"]})
    assert response.status_code == 400
    assert response.json()["error_code"] == "NO_VALID_RECIPIENTS"
    assert response.json()["details"]["invalid_count"] == 5
    assert await row_counts(ctx) == (0, 0)


async def test_streamed_identical_request_is_a_replay(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    body = {"message": "twice", "recipients": il_numbers(7)}
    first = await post(client, tenant, body)
    again = await post(client, tenant, {"message": "twice", "recipients": il_numbers(7)[::-1]})
    assert again.status_code == 200
    assert again.json()["broadcast_id"] == first.json()["broadcast_id"]
    other_audience = await post(client, tenant, {"message": "twice", "recipients": il_numbers(6)})
    assert other_audience.status_code == 202
    assert await row_counts(ctx) == (2, 13)


async def test_streamed_twenty_at_once_make_one_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    body = {"message": "burst", "recipients": il_numbers(50)}
    responses = await asyncio.gather(*(post(client, tenant, body) for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    assert await row_counts(ctx) == (1, 50)


async def test_streamed_with_a_key_replays_the_stored_response(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    body = {"message": "keyed", "recipients": il_numbers(7)}
    first = await post(client, tenant, body, **{"Idempotency-Key": "k-stream"})
    again = await post(client, tenant, body, **{"Idempotency-Key": "k-stream"})
    assert again.json() == {**first.json(), "idempotent": True}
    assert await row_counts(ctx) == (1, 7)


async def test_failure_mid_stream_leaves_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = BroadcastRepository.add_recipients
    calls = 0

    async def fail_on_second_chunk(self: BroadcastRepository, *args: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database went away")
        await original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(BroadcastRepository, "add_recipients", fail_on_second_chunk)
    response = await post(client, tenant, {"message": "x", "recipients": il_numbers(9)})
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert calls == 2
    assert await row_counts(ctx) == (0, 0)
