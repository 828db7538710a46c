"""Replies on both databases: an inbound message within the reply window of a send
marks its recipient and counts in the broadcast once, one outside it marks nothing,
the CRM hears ``recipient.replied``, and the broadcast's page shows the count, the
rate and the text. Time is the frozen app clock."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from sqlalchemy import select

from tests.support.dispatch import broadcast, create, drain, recipients, unpaced
from tests.support.tenants import TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WebhookDelivery

INBOUND = "/api/whatsapp/simulator/inbound"
SUBSCRIPTIONS = "/api/whatsapp/webhook-subscriptions"
HOUR = 3600
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def inbound(client: httpx.AsyncClient, tenant: TenantFixture, sender: str, text: str) -> None:
    response = await client.post(
        INBOUND, json={"from": sender, "text": text}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def sent_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> int:
    broadcast_id = await create(
        client, tenant, ["+972502345678", "+972523456789", "+972533456789"], "Sale today"
    )
    await drain(ctx, clock)
    assert (await broadcast(client, tenant, broadcast_id))["sent_count"] == 3
    return broadcast_id


def by_phone(items: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {item["phone"]: item for item in items}


async def test_a_reply_within_the_window_is_marked_and_counted_once(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await sent_broadcast(client, tenant, ctx, clock)
    clock.advance(71 * HOUR)
    # Without the plus, as some providers spell it: read as E.164 all the same.
    await inbound(client, tenant, "972502345678", "Yes please, how much?")
    replied_at = clock.now()
    clock.advance(60)
    await inbound(client, tenant, "+972502345678", "Hello?")

    b = await broadcast(client, tenant, broadcast_id)
    assert b["reply_count"] == 1
    rows = by_phone(await recipients(client, tenant, broadcast_id))
    first = rows["+972502345678"]
    assert first["reply_text"] == "Yes please, how much?"
    assert first["replied_at"] == replied_at.isoformat().replace("+00:00", "Z")
    assert [rows[p]["replied_at"] for p in ("+972523456789", "+972533456789")] == [None, None]


async def test_a_message_after_the_window_or_before_any_send_marks_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    # Before the broadcast: nothing was sent to the number yet.
    await inbound(client, tenant, "+972523456789", "Hi there")
    broadcast_id = await sent_broadcast(client, tenant, ctx, clock)
    clock.advance(72 * HOUR + 60 * 60)
    await inbound(client, tenant, "+972502345678", "Too late?")
    # From a number the broadcast never sent to.
    await inbound(client, tenant, "+972549999999", "Who is this?")

    assert (await broadcast(client, tenant, broadcast_id))["reply_count"] == 0
    rows = await recipients(client, tenant, broadcast_id)
    assert [(r["replied_at"], r["reply_text"]) for r in rows] == [(None, None)] * 3


async def test_a_long_reply_is_kept_to_its_first_1000_characters(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await sent_broadcast(client, tenant, ctx, clock)
    await inbound(client, tenant, "+972533456789", "א" * 1500)
    rows = by_phone(await recipients(client, tenant, broadcast_id))
    assert rows["+972533456789"]["reply_text"] == "א" * 1000


async def test_the_crm_is_told_of_each_reply_once(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    subscribed = await client.post(
        SUBSCRIPTIONS,
        json={"url": "https://crm.example.com/hooks", "events": ["recipient.replied"]},
        headers=tenant.headers,
    )
    assert subscribed.status_code == 201, subscribed.text
    broadcast_id = await sent_broadcast(client, tenant, ctx, clock)
    clock.advance(HOUR)
    await inbound(client, tenant, "+972523456789", "Interested")
    await inbound(client, tenant, "+972523456789", "Interested!!")
    replied = by_phone(await recipients(client, tenant, broadcast_id))["+972523456789"]

    async with ctx.database.transaction() as session:
        rows = list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
    assert [(row.event_type, row.broadcast_id) for row in rows] == [
        ("recipient.replied", broadcast_id)
    ]
    assert rows[0].data == {
        "broadcast_id": broadcast_id,
        "recipient_id": replied["recipient_id"],
        "phone": "+972523456789",
        "lead_id": None,
        "text": "Interested",
        "replied_at": replied["replied_at"],
    }


async def test_the_broadcast_page_shows_the_replies_their_rate_and_text(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    broadcast_id = await sent_broadcast(client, tenant, ctx, clock)
    clock.advance(2 * HOUR)
    await inbound(client, tenant, "+972502345678", "Send me the <catalogue>")

    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as browser:
        form = await browser.get("/sign-in")
        token = TOKEN_FIELD.search(form.text)
        assert token is not None
        signed_in = await browser.post(
            "/sign-in",
            data={"csrf_token": token.group(1), "api_key": tenant.api_key, "next": "/"},
        )
        assert signed_in.status_code == 303, signed_in.text
        page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert page.status_code == 200
    assert "Send me the &lt;catalogue&gt;" in page.text
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())
    assert "Replies 1 (33.3% of sent)" in text
    assert "Send me the <catalogue>" in text
