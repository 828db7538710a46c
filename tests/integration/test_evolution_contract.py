"""The Evolution provider end to end: our API and worker against a fake Evolution API over HTTP.

The fake (tests/support/fake_evolution.py) speaks Evolution v2's documented
contract; what is checked is what a business would see: that saving a session
registers its webhook with Evolution, the broadcast's status, each recipient's
reason, what reached "Evolution", and what webhooks carrying the registered
secret header change.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dispatch import all_recipients, broadcast, counts_match_rows, drain, unpaced
from tests.support.fake_evolution import (
    FakeEvolution,
    envelope,
    messages_update_body,
    serve_fake_evolution,
    update_item,
)
from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import PendingReceipt, WhatsAppBroadcast, WhatsAppSession
from wabroadcast.providers.evolution import EvolutionProvider

API_KEY = "EVOLUTION-GLOBAL-KEY-0001"
INSTANCE = "shop1"
SESSION_ID = "evo_1"
WEBHOOK = f"/api/whatsapp/webhooks/evolution/{SESSION_ID}"
NUMBERS = ["+972502345671", "+972502345672", "+972502345673"]
EVENTS = ["MESSAGES_UPDATE", "CONNECTION_UPDATE", "MESSAGES_UPSERT"]


def digits(phone: str) -> str:
    return phone.removeprefix("+")


@dataclass
class Evolution:
    fake: FakeEvolution
    base_url: str
    session: dict[str, object]  # the API's answer to creating the session


@pytest.fixture
def served() -> Iterator[tuple[FakeEvolution, str]]:
    fake = FakeEvolution(api_key=API_KEY)
    fake.add_instance(INSTANCE)
    with serve_fake_evolution(fake) as base_url:
        yield fake, base_url


async def _create_session(
    client: httpx.AsyncClient, tenant: TenantFixture, base_url: str
) -> httpx.Response:
    return await client.post(
        "/api/whatsapp/sessions",
        json={
            "session_id": SESSION_ID,
            "provider": "evolution",
            "default": True,
            "config": {"base_url": base_url + "/", "api_key": API_KEY, "instance": INSTANCE},
        },
        headers=tenant.headers,
    )


@pytest.fixture
async def evolution(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    served: tuple[FakeEvolution, str],
) -> AsyncIterator[Evolution]:
    fake, base_url = served
    response = await _create_session(client, tenant, base_url)
    assert response.status_code == 201, response.text
    await unpaced(ctx, SESSION_ID)
    yield Evolution(fake, base_url, response.json())
    await ctx.providers.aclose()


async def _webhook_secret(ctx: AppContext) -> str | None:
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, SESSION_ID)
        return None if row is None else row.webhook_secret


async def _count(ctx: AppContext, model: type[WhatsAppBroadcast | PendingReceipt]) -> int:
    async with ctx.database.transaction() as db:
        return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


async def _post(client: httpx.AsyncClient, tenant: TenantFixture) -> httpx.Response:
    return await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "Hello from the shop", "recipients": NUMBERS},
        headers=tenant.headers,
    )


async def _sent_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> tuple[int, list[str]]:
    """A broadcast of the three numbers, sent; its id and the recipients' key ids, in order."""
    posted = await _post(client, tenant)
    assert posted.status_code == 202, posted.text
    broadcast_id: int = posted.json()["broadcast_id"]
    await drain(ctx, clock)
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert [rows[p]["status"] for p in NUMBERS] == ["sent"] * 3
    return broadcast_id, [rows[p]["provider_message_id"] for p in NUMBERS]


async def _as_evolution(
    client: httpx.AsyncClient, fake: FakeEvolution, body: bytes
) -> httpx.Response:
    """Post ``body`` where Evolution would, with the headers it was given by wabroadcast."""
    path, headers = fake.webhook_call(INSTANCE)
    return await client.post(path, content=body, headers=headers)


# --- the session ---------------------------------------------------------------------


async def test_saving_the_session_registers_its_webhook_with_evolution(
    ctx: AppContext, evolution: Evolution
) -> None:
    (registration,) = evolution.fake.webhook_sets
    assert (registration.instance, registration.apikey, registration.status) == (
        INSTANCE,
        API_KEY,
        201,
    )
    secret = await _webhook_secret(ctx)
    assert secret
    assert registration.body == {
        "webhook": {
            "enabled": True,
            "url": evolution.session["webhook_url"],
            "headers": {"X-Wabroadcast-Webhook-Secret": secret},
            "byEvents": False,
            "base64": False,
            "events": EVENTS,
        }
    }
    assert str(evolution.session["webhook_url"]).endswith(WEBHOOK)
    assert secret != API_KEY
    config = evolution.session["config"]
    assert isinstance(config, dict)
    assert config["base_url"] == evolution.base_url  # the trailing slash dropped
    assert API_KEY not in str(evolution.session)


async def test_a_refused_webhook_registration_is_a_502_and_stores_no_session(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    served: tuple[FakeEvolution, str],
) -> None:
    fake, base_url = served
    fake.refuse_webhook_set(400, [["webhook.url does not conform to the uri format"]])
    response = await _create_session(client, tenant, base_url)
    assert response.status_code == 502, response.text
    assert response.json()["error_code"] == "PROVIDER_SETUP_FAILED"
    assert "uri format" in response.json()["message"]
    assert API_KEY not in response.text
    assert len(fake.webhook_sets) == 1
    assert await _webhook_secret(ctx) is None
    found = await client.get(f"/api/whatsapp/sessions/{SESSION_ID}", headers=tenant.headers)
    assert found.status_code == 404


async def test_an_unreachable_evolution_is_a_502_and_stores_no_session(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    with serve_fake_evolution(FakeEvolution()) as base_url:
        pass  # served, then stopped: nothing listens there any more
    response = await _create_session(client, tenant, base_url)
    assert (response.status_code, response.json()["error_code"]) == (502, "PROVIDER_SETUP_FAILED")
    assert await _webhook_secret(ctx) is None


# --- sending -------------------------------------------------------------------------


async def test_a_broadcast_with_one_number_not_on_whatsapp_ends_partial_with_the_reason(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: Evolution,
) -> None:
    evolution.fake.mark_not_on_whatsapp(digits(NUMBERS[1]))
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
    assert failed["attempts"] == 1
    assert evolution.fake.sends_to(digits(NUMBERS[1])) == []  # checked first: never sent
    for phone in (NUMBERS[0], NUMBERS[2]):
        (send,) = evolution.fake.sends_to(digits(phone))
        assert rows[phone]["status"] == "sent"
        assert rows[phone]["provider_message_id"] == send.message_id
        assert (send.instance, send.apikey, send.status) == (INSTANCE, API_KEY, 201)
        assert send.body == {"number": digits(phone), "text": "Hello from the shop"}
    await counts_match_rows(ctx, broadcast_id)


async def test_a_server_error_is_retried_and_sent_once(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: Evolution,
) -> None:
    evolution.fake.script(digits(NUMBERS[0]), [(502, b"<html>Bad gateway</html>")])
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)

    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 3)
    attempts = evolution.fake.sends_to(digits(NUMBERS[0]))
    assert [send.status for send in attempts] == [502, 201]
    row = next(
        r for r in await all_recipients(client, tenant, broadcast_id) if r["phone"] == NUMBERS[0]
    )
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_a_send_that_may_have_left_is_never_resent(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: Evolution,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    impatient = EvolutionProvider(timeout=httpx.Timeout(0.3, connect=2.0))
    monkeypatch.setitem(ctx.providers._built, "evolution", impatient)
    evolution.fake.stall(digits(NUMBERS[0]), 1.0)
    broadcast_id = (await _post(client, tenant)).json()["broadcast_id"]
    await drain(ctx, clock)
    await impatient.aclose()

    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert (rows[NUMBERS[0]]["status"], rows[NUMBERS[0]]["error_code"]) == (
        "failed",
        "UNKNOWN_OUTCOME",
    )
    assert len(evolution.fake.sends_to(digits(NUMBERS[0]))) == 1
    assert [rows[p]["status"] for p in NUMBERS[1:]] == ["sent", "sent"]


async def test_an_instance_that_is_not_open_is_a_503_before_anything_is_stored(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, evolution: Evolution
) -> None:
    evolution.fake.set_state(INSTANCE, "close")
    response = await _post(client, tenant)
    assert response.status_code == 503
    assert response.json()["error_code"] == "WHATSAPP_NOT_CONNECTED"
    assert await _count(ctx, WhatsAppBroadcast) == 0
    assert evolution.fake.sends == []
    status = (
        await client.get(f"/api/whatsapp/sessions/{SESSION_ID}/status", headers=tenant.headers)
    ).json()
    assert (status["state"], status["connected"]) == ("disconnected", False)
    assert "close" in status["detail"]


# --- webhooks ------------------------------------------------------------------------


async def test_webhooks_with_the_registered_secret_move_recipients_forward_never_back(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: Evolution,
) -> None:
    broadcast_id, (first, second, third) = await _sent_broadcast(client, tenant, ctx, clock)
    fake = evolution.fake

    acked = await _as_evolution(client, fake, messages_update_body(first, "SERVER_ACK"))
    assert (acked.status_code, acked.json()["applied"]) == (200, 0)
    delivered = await _as_evolution(
        client, fake, messages_update_body(first, "DELIVERY_ACK", date_time="2026-11-28T12:00:05Z")
    )
    assert (delivered.status_code, delivered.json()["applied"]) == (200, 1), delivered.text
    # A read without a delivery, and a failure, in one call (data as a list).
    both = envelope(
        "messages.update",
        [update_item(second, "READ"), update_item(third, "ERROR")],
        date_time="2026-11-28T12:00:06Z",
    )
    answer = await _as_evolution(client, fake, json.dumps(both).encode())
    assert (answer.status_code, answer.json()["applied"]) == (200, 2), answer.text
    # A late DELIVERY_ACK after READ changes nothing.
    late = await _as_evolution(
        client, fake, messages_update_body(second, "DELIVERY_ACK", date_time="2026-11-28T12:00:09Z")
    )
    assert (late.status_code, late.json()["applied"], late.json()["ignored"]) == (200, 0, 1)
    # Other events are accepted and change nothing.
    connection = envelope("connection.update", {"instance": INSTANCE, "state": "open"})
    other = await _as_evolution(client, fake, json.dumps(connection).encode())
    assert (other.status_code, other.json()["applied"]) == (200, 0)

    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert [rows[p]["status"] for p in NUMBERS] == ["delivered", "read", "failed"]
    assert rows[NUMBERS[1]]["delivered_at"] is not None
    assert rows[NUMBERS[2]]["error_code"] == "EVOLUTION_ERROR"
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["delivered_count"], body["read_count"], body["failed_count"]) == (2, 1, 1)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_wrong_or_missing_secret_is_401_and_changes_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: Evolution,
) -> None:
    broadcast_id, ids = await _sent_broadcast(client, tenant, ctx, clock)
    body = messages_update_body(ids[0], "READ")
    path, registered = evolution.fake.webhook_call(INSTANCE)
    secret = registered["X-Wabroadcast-Webhook-Secret"]
    header = b"X-Wabroadcast-Webhook-Secret"
    for headers in (
        {b"Content-Type": b"application/json"},
        {header: b"0" * 64},
        {header: API_KEY.encode()},  # the Evolution API key is not the secret
        {header: (secret[:-1] + "é").encode()},  # non-ASCII: a mismatch, not a crash
        {b"apikey": API_KEY.encode()},
    ):
        refused = await client.post(path, content=body, headers=headers)
        assert (refused.status_code, refused.json()["error_code"]) == (401, "WEBHOOK_UNAUTHORIZED")
    # The right secret on another session's URL, or without one, is no better.
    for elsewhere in (
        f"/api/whatsapp/webhooks/evolution/{tenant.session_id}",
        "/api/whatsapp/webhooks/evolution/nobody",
        "/api/whatsapp/webhooks/evolution",
    ):
        refused = await client.post(elsewhere, content=body, headers=registered)
        assert refused.status_code == 401, elsewhere
    assert [r["status"] for r in await all_recipients(client, tenant, broadcast_id)] == ["sent"] * 3
    assert await _count(ctx, PendingReceipt) == 0
