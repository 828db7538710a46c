"""GET routes: one broadcast, lists with filters and cursors, recipients, tenant isolation."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient

URL = "/api/whatsapp/broadcasts"


async def create(
    client: httpx.AsyncClient, tenant: TenantFixture, message: str, count: int = 2
) -> int:
    response = await client.post(
        URL, json={"message": message, "recipients": il_numbers(count)}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    broadcast_id: int = response.json()["broadcast_id"]
    return broadcast_id


async def test_get_broadcast_has_every_documented_field(
    client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    broadcast_id = await create(client, tenant, "hello", 3)
    body = (await client.get(f"{URL}/{broadcast_id}", headers=tenant.headers)).json()
    assert body == {
        "broadcast_id": broadcast_id,
        "status": "queued",
        "status_reason": None,
        "message": "hello",
        "template": None,
        "session_id": tenant.session_id,
        "total_recipients": 3,
        "queued_count": 3,
        "sent_count": 0,
        "delivered_count": 0,
        "read_count": 0,
        "failed_count": 0,
        "cancelled_count": 0,
        "skipped_count": 0,
        "invalid_recipients_count": 0,
        "duplicates_removed": 0,
        "opted_out_count": 0,
        "reply_count": 0,
        "created_at": "2026-11-28T12:00:00Z",
        "send_at": None,
        "quiet_hours": None,
        "quiet_hours_zone": None,
        "queued_at": "2026-11-28T12:00:00Z",
        "started_at": None,
        "finished_at": None,
        "updated_at": "2026-11-28T12:00:00Z",
        # Three sends at the simulator's default pace (tests/integration/test_estimates.py).
        "estimated_finish_at": "2026-11-28T12:00:01.875000Z",
        "waiting_reason": None,
        "waiting_for_broadcast_id": None,
    }


async def test_counts_follow_recipient_statuses(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    broadcast_id = await create(client, tenant, "hello", 5)
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.id == broadcast_id)
            .values(
                queued_count=1,
                sending_count=1,
                sent_count=1,
                delivered_count=0,
                read_count=1,
                failed_count=1,
            )
        )
    body = (await client.get(f"{URL}/{broadcast_id}", headers=tenant.headers)).json()
    assert body["queued_count"] == 2  # queued + sending
    assert body["sent_count"] == 2  # sent + delivered + read
    assert body["delivered_count"] == 1  # delivered + read
    assert body["read_count"] == 1
    assert body["failed_count"] == 1


async def test_list_is_newest_first_and_pages_with_a_cursor(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    ids = [await create(client, tenant, f"message {i}") for i in range(5)]
    first = (await client.get(URL, params={"limit": 2}, headers=tenant.headers)).json()
    assert [b["broadcast_id"] for b in first["items"]] == [ids[4], ids[3]]
    second = (
        await client.get(
            URL, params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant.headers
        )
    ).json()
    assert [b["broadcast_id"] for b in second["items"]] == [ids[2], ids[1]]
    third = (
        await client.get(
            URL, params={"limit": 2, "cursor": second["next_cursor"]}, headers=tenant.headers
        )
    ).json()
    assert [b["broadcast_id"] for b in third["items"]] == [ids[0]]
    assert third["next_cursor"] is None
    assert set(first["items"][0]) == set(
        (await client.get(f"{URL}/{ids[4]}", headers=tenant.headers)).json()
    )


async def test_list_filters_by_status(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    keep = await create(client, tenant, "a")
    other = await create(client, tenant, "b")
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.id == other)
            .values(status="completed")
        )
    queued = (await client.get(URL, params={"status": "queued"}, headers=tenant.headers)).json()
    assert [b["broadcast_id"] for b in queued["items"]] == [keep]
    done = (await client.get(URL, params={"status": "completed"}, headers=tenant.headers)).json()
    assert [b["broadcast_id"] for b in done["items"]] == [other]


async def test_recipients_page_and_filter(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    broadcast_id = await create(client, tenant, "a", 5)
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppBroadcastRecipient)
            .where(WhatsAppBroadcastRecipient.phone == "+972500000003")
            .values(status="failed", error_code="NOT_ON_WHATSAPP", error_message="not on WhatsApp")
        )
    url = f"{URL}/{broadcast_id}/recipients"
    page1 = (await client.get(url, params={"limit": 3}, headers=tenant.headers)).json()
    page2 = (
        await client.get(
            url, params={"limit": 3, "cursor": page1["next_cursor"]}, headers=tenant.headers
        )
    ).json()
    phones = [r["phone"] for r in page1["items"] + page2["items"]]
    assert phones == il_numbers(5)
    assert page2["next_cursor"] is None
    failed = (await client.get(url, params={"status": "failed"}, headers=tenant.headers)).json()
    assert len(failed["items"]) == 1
    item = failed["items"][0]
    assert (item["phone"], item["error_code"], item["error_message"], item["attempts"]) == (
        "+972500000003",
        "NOT_ON_WHATSAPP",
        "not on WhatsApp",
        0,
    )
    assert {"queued_at", "sent_at", "delivered_at", "read_at", "failed_at", "lead_id"} <= set(item)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"status": "nope"},
        {"cursor": "garbage!"},
        {"cursor": "aWQ6eA"},
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, tenant: TenantFixture, params: dict[str, str | int]
) -> None:
    broadcast_id = await create(client, tenant, "a")
    for url in (URL, f"{URL}/{broadcast_id}/recipients"):
        response = await client.get(url, params=params, headers=tenant.headers)
        assert response.status_code == 422, (url, params)
        assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_limit_500_is_allowed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    assert (await client.get(URL, params={"limit": 500}, headers=tenant.headers)).status_code == 200


async def test_a_tenant_never_sees_another_tenants_data(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    mine = await create(client, tenant, "mine")
    for path in (f"{URL}/{mine}", f"{URL}/{mine}/recipients"):
        response = await client.get(path, headers=other.headers)
        assert response.status_code == 404
        assert response.json()["error_code"] == "BROADCAST_NOT_FOUND"
    assert (await client.get(URL, headers=other.headers)).json()["items"] == []


async def test_unknown_broadcast_and_route_are_404_envelopes(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    missing = await client.get(f"{URL}/424242", headers=tenant.headers)
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "BROADCAST_NOT_FOUND"
    no_route = await client.get("/api/whatsapp/nothing-here", headers=tenant.headers)
    assert no_route.status_code == 404
    assert no_route.json() == {
        "success": False,
        "error_code": "NOT_FOUND",
        "message": "Not Found",
        "details": {},
    }
    wrong_method = await client.delete(URL, headers=tenant.headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert wrong_method.headers["Allow"] == "GET, POST"
    bad_id = await client.get(f"{URL}/abc", headers=tenant.headers)
    assert bad_id.status_code == 422
