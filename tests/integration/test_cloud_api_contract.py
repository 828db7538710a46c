"""The Cloud API provider end to end: our API and worker against a fake Graph server over HTTP.

The fake (tests/support/fake_graph.py) speaks Meta's documented contract; what is
checked is what a business would see: the broadcast's status, each recipient's
reason, what reached "Meta", and what signed status webhooks change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dispatch import all_recipients, broadcast, counts_match_rows, drain, unpaced
from tests.support.fake_graph import (
    FakeGraph,
    serve_fake_graph,
    signed_headers,
    status_entry,
    status_webhook,
)
from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import PendingReceipt, WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.receipts.pending import apply_pending

PHONE_NUMBER_ID = "100000000000001"
TOKEN = "EAAG-test-access-token-0001"
APP_SECRET = "test-app-secret-0001"
VERIFY_TOKEN = "test-verify-token-0001"
WEBHOOK = "/api/whatsapp/webhooks/cloud_api"
NUMBERS = ["+972502345671", "+972502345672", "+972502345673"]


def digits(phone: str) -> str:
    return phone.removeprefix("+")


@dataclass
class Cloud:
    graph: FakeGraph
    base_url: str
    session_id: str


@pytest.fixture
def graph() -> Iterator[tuple[FakeGraph, str]]:
    fake = FakeGraph()
    fake.add_number(PHONE_NUMBER_ID, TOKEN)
    with serve_fake_graph(fake) as base_url:
        yield fake, base_url


@pytest.fixture
async def cloud(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    graph: tuple[FakeGraph, str],
) -> AsyncIterator[Cloud]:
    fake, base_url = graph
    response = await client.post(
        "/api/whatsapp/sessions",
        json={
            "session_id": "meta_1",
            "provider": "cloud_api",
            "default": True,
            "config": {
                "phone_number_id": PHONE_NUMBER_ID,
                "access_token": TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN,
                "graph_base_url": base_url,
            },
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    await unpaced(ctx, "meta_1", max_concurrency=2)
    yield Cloud(fake, base_url, "meta_1")
    await ctx.providers.aclose()


async def _post(client: httpx.AsyncClient, tenant: TenantFixture, **body: object) -> httpx.Response:
    return await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "Hello from the shop", "recipients": NUMBERS, **body},
        headers=tenant.headers,
    )


async def _webhook(client: httpx.AsyncClient, statuses: list[dict[str, object]]) -> httpx.Response:
    body = status_webhook(PHONE_NUMBER_ID, statuses)
    return await client.post(WEBHOOK, content=body, headers=signed_headers(APP_SECRET, body))


async def _broadcasts(ctx: AppContext) -> int:
    async with ctx.database.transaction() as db:
        return int(
            (await db.execute(select(func.count()).select_from(WhatsAppBroadcast))).scalar_one()
        )


async def test_a_broadcast_with_one_undeliverable_number_ends_partial_with_the_reason(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    cloud.graph.fail_always(digits(NUMBERS[1]), 131026)
    posted = await _post(client, tenant)
    assert posted.status_code == 202, posted.text
    assert posted.json()["connection_check"] == "connected"
    broadcast_id = posted.json()["broadcast_id"]
    await drain(ctx, clock)

    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"], body["failed_count"]) == ("partial", 2, 1)
    rows = {row["phone"]: row for row in await all_recipients(client, tenant, broadcast_id)}
    failed = rows[NUMBERS[1]]
    assert (failed["status"], failed["error_code"]) == ("failed", "META_131026")
    assert "undeliverable" in failed["error_message"].lower()
    for phone in (NUMBERS[0], NUMBERS[2]):
        assert rows[phone]["status"] == "sent"
        (send,) = [s for s in cloud.graph.sends_to(digits(phone)) if s.message_id]
        assert rows[phone]["provider_message_id"] == send.message_id
        assert send.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
        assert send.authorization == f"Bearer {TOKEN}"
        assert isinstance(send.body, dict)
        assert send.body["type"] == "text"
        assert send.body["text"]["body"] == "Hello from the shop"
        assert str(send.body["biz_opaque_callback_data"]).startswith("wab-")
    await counts_match_rows(ctx, broadcast_id)


async def test_a_throughput_error_is_retried_and_sent_once(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    cloud.graph.script_errors(digits(NUMBERS[0]), [130429])
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)

    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 3)
    attempts = cloud.graph.sends_to(digits(NUMBERS[0]))
    assert [send.message_id is not None for send in attempts] == [False, True]
    row = next(
        r for r in await all_recipients(client, tenant, broadcast_id) if r["phone"] == NUMBERS[0]
    )
    assert (row["status"], row["attempts"]) == ("sent", 2)
    for phone in NUMBERS[1:]:
        assert len(cloud.graph.sends_to(digits(phone))) == 1


async def test_a_spam_restriction_pauses_the_broadcast(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    await unpaced(ctx, cloud.session_id, max_concurrency=1)
    cloud.graph.fail_always(digits(NUMBERS[0]), 131048)
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)

    body = await broadcast(client, tenant, broadcast_id)
    assert body["status"] == "paused"
    assert (
        "131048" in (body["status_reason"] or "") or "spam" in (body["status_reason"] or "").lower()
    )
    assert body["sent_count"] == 0
    # Nothing more went out after the restriction.
    assert [len(cloud.graph.sends_to(digits(p))) for p in NUMBERS] == [1, 0, 0]
    await counts_match_rows(ctx, broadcast_id)


async def test_a_refused_token_is_a_503_before_anything_is_stored(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, cloud: Cloud
) -> None:
    cloud.graph.expire_token(TOKEN)
    response = await _post(client, tenant)
    assert response.status_code == 503
    assert response.json()["error_code"] == "WHATSAPP_NOT_CONNECTED"
    assert await _broadcasts(ctx) == 0
    assert cloud.graph.sends_received == 0
    status = (
        await client.get(
            f"/api/whatsapp/sessions/{cloud.session_id}/status", headers=tenant.headers
        )
    ).json()
    assert (status["state"], status["connected"]) == ("disconnected", False)


async def test_a_template_broadcast_sends_the_template(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    template = {
        "name": "order_update",
        "language": "he",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}],
    }
    posted = await _post(client, tenant, template=template, recipients=NUMBERS[:1])
    assert posted.status_code == 202, posted.text
    await drain(ctx, clock)
    (send,) = cloud.graph.sends_to(digits(NUMBERS[0]))
    assert isinstance(send.body, dict)
    assert send.body["type"] == "template"
    assert send.body["template"] == {
        "name": "order_update",
        "language": {"code": "he"},
        "components": template["components"],
    }
    assert "text" not in send.body
    body = await broadcast(client, tenant, posted.json()["broadcast_id"])
    assert (body["status"], body["template"]["name"]) == ("completed", "order_update")


async def test_a_template_on_a_provider_without_templates_is_refused(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, cloud: Cloud
) -> None:
    response = await _post(
        client, tenant, session_id=tenant.session_id, template={"name": "x", "language": "en"}
    )
    assert (response.status_code, response.json()["details"]["field"]) == (422, "template")
    assert await _broadcasts(ctx) == 0


async def test_signed_status_webhooks_move_recipients_forward_never_back(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    first, second, third = (rows[p]["provider_message_id"] for p in NUMBERS)
    now = int(clock.now().timestamp())
    answer = await _webhook(
        client,
        [
            status_entry(first, "delivered", timestamp=now + 5),
            status_entry(second, "read", timestamp=now + 6),  # read without delivered
            status_entry(
                third,
                "failed",
                timestamp=now + 7,
                errors=[{"code": 131026, "title": "Message undeliverable"}],
            ),
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 3
    # A late "delivered" after "read" changes nothing.
    late = await _webhook(client, [status_entry(second, "delivered", timestamp=now + 8)])
    assert late.json()["ignored"] == 1
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert [rows[p]["status"] for p in NUMBERS] == ["delivered", "read", "failed"]
    assert rows[NUMBERS[2]]["error_code"] == "META_131026"
    assert rows[NUMBERS[1]]["delivered_at"] is not None
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["delivered_count"], body["read_count"], body["failed_count"]) == (2, 1, 1)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_forged_signature_is_401_and_changes_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)
    rows = await all_recipients(client, tenant, broadcast_id)
    body = status_webhook(
        PHONE_NUMBER_ID,
        [
            status_entry(
                rows[0]["provider_message_id"], "read", timestamp=int(clock.now().timestamp())
            )
        ],
    )
    for headers in (
        signed_headers("not-the-app-secret", body),
        {"Content-Type": "application/json"},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    ):
        refused = await client.post(WEBHOOK, content=body, headers=headers)
        assert (refused.status_code, refused.json()["error_code"]) == (401, "WEBHOOK_UNAUTHORIZED")
    other_number = status_webhook("999", [])
    unknown = await client.post(
        WEBHOOK, content=other_number, headers=signed_headers(APP_SECRET, other_number)
    )
    assert unknown.status_code == 401
    assert [r["status"] for r in await all_recipients(client, tenant, broadcast_id)] == ["sent"] * 3
    async with ctx.database.transaction() as db:
        assert (
            await db.execute(select(func.count()).select_from(PendingReceipt))
        ).scalar_one() == 0


async def test_a_receipt_that_overtakes_its_send_is_applied_once_the_send_is_recorded(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    cloud: Cloud,
) -> None:
    early = await _webhook(
        client,
        [status_entry("wamid.NOT-YET", "delivered", timestamp=int(clock.now().timestamp()))],
    )
    assert (early.status_code, early.json()["unknown"]) == (200, 1)
    broadcast_id = (await _post(client, tenant, recipients=NUMBERS[:1])).json()["broadcast_id"]
    await drain(ctx, clock)
    (row,) = await all_recipients(client, tenant, broadcast_id)
    assert row["status"] == "sent"
    # Stand in for the send Meta reported early: give the recipient that wamid.
    async with ctx.database.transaction() as db:
        recipient = await db.get(WhatsAppBroadcastRecipient, row["recipient_id"])
        assert recipient is not None
        recipient.provider_message_id = "wamid.NOT-YET"
    assert await apply_pending(ctx) == 1
    (row,) = await all_recipients(client, tenant, broadcast_id)
    assert row["status"] == "delivered"
    assert await apply_pending(ctx) == 0


async def test_metas_verification_handshake(
    client: httpx.AsyncClient, tenant: TenantFixture, cloud: Cloud
) -> None:
    ok = await client.get(
        WEBHOOK,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {},
    ):
        refused = await client.get(WEBHOOK, params=params)
        assert refused.status_code == 403
