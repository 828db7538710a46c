"""The WAHA provider end to end: our API and worker against a fake WAHA over HTTP.

The fake (tests/support/fake_waha.py) speaks WAHA's documented contract; what is
checked is what a business would see: the broadcast's status, each recipient's
reason, what reached "WAHA", and what signed ``message.ack`` webhooks change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dispatch import all_recipients, broadcast, counts_match_rows, drain, unpaced
from tests.support.fake_waha import GOWS, FakeWaha, ack_webhook, serve_fake_waha, signed_headers
from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import PendingReceipt, WhatsAppBroadcast

API_KEY = "waha-api-key-0001"
HMAC_KEY = "waha-hmac-key-0123456789"
SESSION_ID = "waha_1"
WEBHOOK = f"/api/whatsapp/webhooks/waha/{SESSION_ID}"
NUMBERS = ["+972502345671", "+972502345672", "+972502345673"]


def digits(phone: str) -> str:
    return phone.removeprefix("+")


@dataclass
class Waha:
    fake: FakeWaha
    base_url: str
    session_id: str
    webhook_url: str


@pytest.fixture
def fake_waha() -> Iterator[tuple[FakeWaha, str]]:
    fake = FakeWaha(api_key=API_KEY)
    with serve_fake_waha(fake) as base_url:
        yield fake, base_url


@pytest.fixture
async def waha(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    fake_waha: tuple[FakeWaha, str],
) -> AsyncIterator[Waha]:
    fake, base_url = fake_waha
    response = await client.post(
        "/api/whatsapp/sessions",
        json={
            "session_id": SESSION_ID,
            "provider": "waha",
            "default": True,
            "config": {"base_url": base_url, "api_key": API_KEY, "hmac_key": HMAC_KEY},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    # Secrets are never returned; the URL to paste into WAHA is per session.
    assert API_KEY not in response.text
    assert HMAC_KEY not in response.text
    assert created["config"]["session"] == "default"
    assert created["webhook_url"].endswith(WEBHOOK)
    await unpaced(ctx, SESSION_ID)
    yield Waha(fake, base_url, SESSION_ID, created["webhook_url"])
    await ctx.providers.aclose()


async def _post(client: httpx.AsyncClient, tenant: TenantFixture, **body: object) -> httpx.Response:
    return await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "Hello from the shop", "recipients": NUMBERS, **body},
        headers=tenant.headers,
    )


async def _ack(client: httpx.AsyncClient, message_id: str, ack: int, at_ms: int) -> httpx.Response:
    body = ack_webhook(message_id, ack, timestamp_ms=at_ms)
    return await client.post(WEBHOOK, content=body, headers=signed_headers(HMAC_KEY, body))


async def _broadcasts(ctx: AppContext) -> int:
    async with ctx.database.transaction() as db:
        return int(
            (await db.execute(select(func.count()).select_from(WhatsAppBroadcast))).scalar_one()
        )


async def _sent(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> tuple[int, list[str]]:
    """Broadcast to NUMBERS and drain; the broadcast and each recipient's message id."""
    posted = await _post(client, tenant)
    assert posted.status_code == 202, posted.text
    broadcast_id: int = posted.json()["broadcast_id"]
    await drain(ctx, clock)
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    return broadcast_id, [rows[phone]["provider_message_id"] for phone in NUMBERS]


async def test_a_number_not_on_whatsapp_fails_alone_and_is_never_sent_to(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: Waha,
) -> None:
    waha.fake.not_on_whatsapp.add(digits(NUMBERS[1]))
    posted = await _post(client, tenant)
    assert posted.status_code == 202, posted.text
    assert posted.json()["connection_check"] == "connected"
    broadcast_id = posted.json()["broadcast_id"]
    await drain(ctx, clock)

    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"], body["failed_count"]) == ("partial", 2, 1)
    rows = {row["phone"]: row for row in await all_recipients(client, tenant, broadcast_id)}
    failed = rows[NUMBERS[1]]
    assert (failed["status"], failed["error_code"]) == ("failed", "NOT_ON_WHATSAPP")
    assert failed["provider_message_id"] is None
    assert waha.fake.sends_to(digits(NUMBERS[1])) == []
    assert sorted(check.phone or "" for check in waha.fake.checks) == sorted(map(digits, NUMBERS))
    for phone in (NUMBERS[0], NUMBERS[2]):
        (send,) = waha.fake.sends_to(digits(phone))
        assert rows[phone]["status"] == "sent"
        assert rows[phone]["provider_message_id"] == send.message_id
        assert rows[phone]["provider_message_id"].startswith(f"true_{digits(phone)}@c.us_")
        assert send.api_key == API_KEY
        assert send.body == {
            "session": "default",
            "chatId": f"{digits(phone)}@c.us",
            "text": "Hello from the shop",
        }
    await counts_match_rows(ctx, broadcast_id)


async def test_signed_acks_move_recipients_forward_never_back(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: Waha,
) -> None:
    broadcast_id, (first, second, third) = await _sent(client, tenant, ctx, clock)
    now_ms = int(clock.now().timestamp() * 1000)

    delivered = await _ack(client, first, 2, now_ms + 5_000)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["applied"] == 1
    read = await _ack(client, first, 3, now_ms + 6_000)
    assert read.json()["applied"] == 1
    # A late DEVICE ack after READ changes nothing.
    late = await _ack(client, first, 2, now_ms + 7_000)
    assert (late.status_code, late.json()["applied"], late.json()["ignored"]) == (200, 0, 1)
    # SERVER says nothing new; ERROR fails the message.
    server = await _ack(client, second, 1, now_ms + 5_000)
    assert (server.status_code, server.json()["applied"]) == (200, 0)
    error = await _ack(client, third, -1, now_ms + 5_000)
    assert error.json()["applied"] == 1

    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert [rows[p]["status"] for p in NUMBERS] == ["read", "sent", "failed"]
    assert rows[NUMBERS[0]]["delivered_at"] is not None
    assert rows[NUMBERS[0]]["read_at"] is not None
    assert rows[NUMBERS[2]]["error_code"] == "WAHA_ACK_ERROR"
    body = await broadcast(client, tenant, broadcast_id)
    # Counts are cumulative: a read message was delivered, and both were sent.
    assert (body["delivered_count"], body["read_count"], body["failed_count"]) == (1, 1, 1)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_gows_engine_gives_ids_that_acks_find(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: Waha,
) -> None:
    waha.fake.engine = GOWS
    broadcast_id, ids = await _sent(client, tenant, ctx, clock)
    assert ids == [waha.fake.sends_to(digits(p))[0].message_id for p in NUMBERS]
    answer = await _ack(client, ids[0], 2, int(clock.now().timestamp() * 1000))
    assert answer.json()["applied"] == 1
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert rows[NUMBERS[0]]["status"] == "delivered"


async def test_a_send_that_may_have_left_is_never_sent_again(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: Waha,
) -> None:
    # WAHA accepted the message but its answer carries no id: it may be on its way.
    waha.fake.script(digits(NUMBERS[0]), (201, b'{"status":"PENDING"}'))
    # A 5xx is different: the message did not go, so it is tried again.
    waha.fake.script(digits(NUMBERS[1]), (503, b"<html>unavailable</html>"))
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert (rows[NUMBERS[0]]["status"], rows[NUMBERS[0]]["error_code"]) == (
        "failed",
        "UNKNOWN_OUTCOME",
    )
    assert len(waha.fake.sends_to(digits(NUMBERS[0]))) == 1
    assert (rows[NUMBERS[1]]["status"], rows[NUMBERS[1]]["attempts"]) == ("sent", 2)
    assert len(waha.fake.sends_to(digits(NUMBERS[1]))) == 2
    await counts_match_rows(ctx, broadcast_id)


async def test_a_forged_hmac_is_401_and_changes_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: Waha,
) -> None:
    broadcast_id, ids = await _sent(client, tenant, ctx, clock)
    body = ack_webhook(ids[0], 3, timestamp_ms=int(clock.now().timestamp() * 1000))
    for headers in (
        signed_headers("not-the-sessions-hmac-key", body),
        {"Content-Type": "application/json"},
        {"X-Webhook-Hmac": "0" * 128},
    ):
        refused = await client.post(WEBHOOK, content=body, headers=headers)
        assert (refused.status_code, refused.json()["error_code"]) == (401, "WEBHOOK_UNAUTHORIZED")
    # The right signature on another session's URL is refused too.
    other = await client.post(
        "/api/whatsapp/webhooks/waha/no_such_session",
        content=body,
        headers=signed_headers(HMAC_KEY, body),
    )
    assert other.status_code == 401
    rows = await all_recipients(client, tenant, broadcast_id)
    assert [r["status"] for r in rows] == ["sent"] * 3
    async with ctx.database.transaction() as db:
        assert (
            await db.execute(select(func.count()).select_from(PendingReceipt))
        ).scalar_one() == 0


async def test_other_events_are_accepted_and_change_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: Waha,
) -> None:
    broadcast_id, ids = await _sent(client, tenant, ctx, clock)
    body = ack_webhook(ids[0], 3, event="session.status")
    answer = await client.post(WEBHOOK, content=body, headers=signed_headers(HMAC_KEY, body))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["applied"], answer.json()["unknown"]) == (0, 0)
    assert [r["status"] for r in await all_recipients(client, tenant, broadcast_id)] == ["sent"] * 3


@pytest.mark.parametrize("waha_status", ["SCAN_QR_CODE", "FAILED"])
async def test_a_session_that_is_not_working_is_a_503_before_anything_is_stored(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, waha: Waha, waha_status: str
) -> None:
    waha.fake.sessions["default"] = waha_status
    response = await _post(client, tenant)
    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "WHATSAPP_NOT_CONNECTED"
    assert await _broadcasts(ctx) == 0
    assert (waha.fake.checks, waha.fake.sends) == ([], [])
    status = (
        await client.get(f"/api/whatsapp/sessions/{waha.session_id}/status", headers=tenant.headers)
    ).json()
    assert (status["state"], status["connected"]) == ("disconnected", False)
    assert waha_status in str(status)
