"""Opt-outs on both databases: an opted-out number is not queued by a new broadcast, a
queued recipient whose number opts out is skipped, stop words opt their sender out
(through the simulator's inbound route and the Baileys gateway's webhook), and the
list can be paged, filtered, imported from a CSV file and taken back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dispatch import (
    URL,
    broadcast,
    counts_match_rows,
    create,
    dispatcher,
    drain,
    every_page,
    recipients,
    scenario,
    sends,
    unpaced,
)
from tests.support.fake_evolution import FakeEvolution, serve_fake_evolution
from tests.support.fake_evolution import envelope as evolution_envelope
from tests.support.fake_evolution import webhook_headers as evolution_headers
from tests.support.fake_waha import signed_headers as waha_signed
from tests.support.providers import add_session
from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.broadcasts.create import STREAM_CHUNK
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import (
    InboundMessageRow,
    OptOut,
    WhatsAppBroadcastRecipient,
    WhatsAppSession,
)
from wabroadcast.opt_outs.repository import OptOutRepository
from wabroadcast.providers.baileys.webhook import sign as baileys_sign

OPT_OUTS = "/api/whatsapp/opt-outs"
INBOUND = "/api/whatsapp/simulator/inbound"


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def opt_out(
    client: httpx.AsyncClient, tenant: TenantFixture, phones: list[str], **extra: Any
) -> dict[str, Any]:
    response = await client.post(OPT_OUTS, json={"phones": phones, **extra}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(client: httpx.AsyncClient, tenant: TenantFixture) -> list[str]:
    items, _ = await every_page(client, tenant, OPT_OUTS)
    return [item["phone"] for item in items]


async def inbound(client: httpx.AsyncClient, tenant: TenantFixture, sender: str, text: str) -> None:
    response = await client.post(
        INBOUND, json={"from": sender, "text": text}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def sent_phones(client: httpx.AsyncClient, tenant: TenantFixture) -> list[str]:
    return [send["phone"] for send in (await sends(client, tenant))["items"]]


async def test_numbers_opted_out_in_any_spelling_are_not_queued_and_the_proof_says_so(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    added = await opt_out(
        client, tenant, ["050-234-5678", "+972 52 345 6789", "0502345678", "call me"]
    )
    assert (added["added_count"], added["already_count"], added["invalid_count"]) == (2, 0, 1)
    assert added["added"] == ["+972502345678", "+972523456789"]
    assert added["invalid"][0]["input"] == "call me"
    again = await opt_out(client, tenant, ["00972502345678"], reason="asked by phone")
    assert (again["added_count"], again["already_count"]) == (0, 1)

    body = {
        "message": "Sale today",
        "recipients": ["+972502345678", "0523456789", "053-345-6789", "12", "0533456789"],
    }
    response = await client.post(
        URL, json=body, headers={**tenant.headers, "Idempotency-Key": "sale-1"}
    )
    assert response.status_code == 202, response.text
    proof = response.json()
    assert proof["opted_out_count"] == 2
    assert proof["opted_out"] == ["+972502345678", "+972523456789"]
    assert (proof["invalid_recipients_count"], proof["duplicates_removed"]) == (1, 1)
    assert (proof["total_recipients"], proof["queued_count"]) == (1, 1)
    assert [item["phone"] for item in proof["items"]] == ["+972533456789"]

    replay = await client.post(
        URL, json=body, headers={**tenant.headers, "Idempotency-Key": "sale-1"}
    )
    assert replay.json()["opted_out_count"] == 2
    b = await broadcast(client, tenant, proof["broadcast_id"])
    assert (b["opted_out_count"], b["total_recipients"]) == (2, 1)

    await drain(ctx, clock)
    assert await sent_phones(client, tenant) == ["+972533456789"]
    b = await broadcast(client, tenant, proof["broadcast_id"])
    assert (b["status"], b["sent_count"], b["skipped_count"]) == ("completed", 1, 0)


async def test_a_content_twin_is_found_and_reports_its_opted_out_numbers(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    await opt_out(client, tenant, ["0502345678"])
    body = {"message": "Twin", "recipients": ["0502345678", "0523456789"]}
    first = await client.post(URL, json=body, headers=tenant.headers)
    second = await client.post(URL, json=body, headers=tenant.headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["broadcast_id"] == first.json()["broadcast_id"]
    assert second.json()["opted_out"] == ["+972502345678"]


async def test_a_broadcast_whose_every_valid_number_opted_out_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await opt_out(client, tenant, ["0502345678", "0523456789"])
    before = await row_counts(ctx)
    response = await client.post(
        URL,
        json={"message": "hi", "recipients": ["+972502345678", "052-345-6789", "nope"]},
        headers=tenant.headers,
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["success"], error["error_code"]) == (False, "ALL_RECIPIENTS_OPTED_OUT")
    assert error["details"]["opted_out_count"] == 2
    assert error["details"]["invalid_count"] == 1
    assert await row_counts(ctx) == before


async def test_a_long_list_is_filtered_while_it_streams(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(STREAM_CHUNK + 30)
    # One in the first chunk, two in the second, spelled nationally.
    out = [numbers[5], numbers[STREAM_CHUNK + 1], numbers[-1]]
    await opt_out(client, tenant, ["0" + n.removeprefix("+972") for n in out])
    response = await client.post(
        URL, json={"message": "Long", "recipients": numbers}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    proof = response.json()
    assert (proof["opted_out_count"], proof["opted_out"]) == (3, out)
    assert proof["total_recipients"] == len(numbers) - 3
    async with ctx.database.transaction() as db:
        stored = (
            await db.execute(
                select(func.count())
                .select_from(WhatsAppBroadcastRecipient)
                .where(
                    WhatsAppBroadcastRecipient.broadcast_id == proof["broadcast_id"],
                    WhatsAppBroadcastRecipient.phone.in_(out),
                )
            )
        ).scalar_one()
        total = (
            await db.execute(
                select(func.count())
                .select_from(WhatsAppBroadcastRecipient)
                .where(WhatsAppBroadcastRecipient.broadcast_id == proof["broadcast_id"])
            )
        ).scalar_one()
    assert (stored, total) == (0, len(numbers) - 3)
    await counts_match_rows(ctx, proof["broadcast_id"])


async def test_an_opt_out_while_a_broadcast_is_being_created_is_not_missed(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The opt-out is posted just after the creating transaction has read the opt-outs
    (none) and before it commits: it waits for the broadcast, then skips the number."""
    numbers = il_numbers(STREAM_CHUNK + 500)
    targets = [numbers[10], numbers[STREAM_CHUNK + 10]]
    read_opt_outs = OptOutRepository.phones
    opting_out: list[asyncio.Task[httpx.Response]] = []

    async def read_then_race(repo: OptOutRepository, tenant_id: int) -> frozenset[str]:
        phones = await read_opt_outs(repo, tenant_id)
        if not opting_out:
            opting_out.append(
                asyncio.create_task(
                    client.post(OPT_OUTS, json={"phones": targets}, headers=tenant.headers)
                )
            )
            # Let it run as far as it can (to its commit, were nothing holding it back).
            await asyncio.sleep(0.3)
        return phones

    monkeypatch.setattr(OptOutRepository, "phones", read_then_race)
    created = await client.post(
        URL, json={"message": "Race", "recipients": numbers}, headers=tenant.headers
    )
    assert created.status_code == 202, created.text
    added = await opting_out[0]
    assert (added.json()["added_count"], added.json()["skipped_count"]) == (2, 2)
    proof = created.json()
    assert proof["opted_out_count"] == 0
    skipped = await recipients(client, tenant, proof["broadcast_id"], "skipped")
    assert sorted(r["phone"] for r in skipped) == sorted(targets)
    await counts_match_rows(ctx, proof["broadcast_id"])


async def test_a_number_that_opts_out_mid_broadcast_is_skipped_and_the_counts_are_exact(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(6)
    # The session drops at the third send: two are sent, the rest wait queued.
    await scenario(client, tenant, fail_numbers={numbers[2]: "SESSION_DISCONNECTED"})
    broadcast_id = await create(client, tenant, numbers)
    with pytest.raises(RuntimeError, match="idle"):
        await dispatcher(ctx).run_until_idle(max_rounds=1)
    statuses = [r["status"] for r in await recipients(client, tenant, broadcast_id)]
    assert statuses == ["sent", "sent", "queued", "queued", "queued", "queued"]

    # A number already sent to, and two still queued, in other spellings.
    added = await opt_out(client, tenant, ["050-000-0001", "0500000003", "972500000004"])
    assert (added["added_count"], added["skipped_count"]) == (3, 2)
    await counts_match_rows(ctx, broadcast_id)

    await scenario(client, tenant, fail_numbers={})
    await drain(ctx, clock)
    # The send log has the refused attempt at numbers[2] and its retry; never 3 or 4.
    assert set(await sent_phones(client, tenant)) == {
        numbers[0],
        numbers[1],
        numbers[2],
        numbers[5],
    }
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["skipped_count"], b["queued_count"]) == (
        "completed",
        4,
        2,
        0,
    )
    skipped = await recipients(client, tenant, broadcast_id, "skipped")
    assert [(r["phone"], r["error_code"]) for r in skipped] == [
        (numbers[3], "opted_out"),
        (numbers[4], "opted_out"),
    ]
    await counts_match_rows(ctx, broadcast_id)


async def test_retry_failed_does_not_queue_a_number_that_opted_out_since(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(3)
    await scenario(client, tenant, fail_numbers=dict.fromkeys(numbers[:2], "SERVER_ERROR"))
    broadcast_id = await create(client, tenant, numbers)
    await drain(ctx, clock)
    assert (await broadcast(client, tenant, broadcast_id))["failed_count"] == 2
    await opt_out(client, tenant, [numbers[0]])
    await scenario(client, tenant, fail_numbers={})
    retried = await client.post(
        f"{URL}/{broadcast_id}/retry-failed", json={"error_codes": []}, headers=tenant.headers
    )
    assert retried.json() == {"requeued": 1}
    await drain(ctx, clock)
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("partial", 2, 1)
    assert [r["phone"] for r in await recipients(client, tenant, broadcast_id, "failed")] == [
        numbers[0]
    ]
    await counts_match_rows(ctx, broadcast_id)


async def test_a_queued_broadcast_whose_every_recipient_opts_out_finishes(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(2)
    broadcast_id = await create(client, tenant, numbers)
    added = await opt_out(client, tenant, numbers)
    assert added["skipped_count"] == 2
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["skipped_count"], b["queued_count"]) == ("completed", 2, 0)
    assert b["finished_at"] is not None
    await drain(ctx, clock)
    assert await sent_phones(client, tenant) == []
    await counts_match_rows(ctx, broadcast_id)


@pytest.mark.parametrize("text", ["Stop", " unsubscribe! ", "הסר", "\u200fהסרה\u200f", "עצור"])
async def test_a_stop_word_through_the_simulator_opts_its_sender_out(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    text: str,
) -> None:
    numbers = il_numbers(3)
    broadcast_id = await create(client, tenant, numbers)
    await inbound(client, tenant, "972500000001", "thanks!")  # not a stop word
    await inbound(client, tenant, numbers[2], text)
    assert await listed(client, tenant) == [numbers[2]]
    (item,) = (await client.get(OPT_OUTS, headers=tenant.headers)).json()["items"]
    assert (item["source"], item["reason"]) == ("inbound", "stop word")
    assert datetime.fromisoformat(item["created_at"]) == clock.now()

    await drain(ctx, clock)
    assert sorted(await sent_phones(client, tenant)) == numbers[:2]
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["skipped_count"]) == ("completed", 2, 1)
    await counts_match_rows(ctx, broadcast_id)


async def test_a_tenant_sets_its_own_stop_words(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    defaults = (await client.get("/api/whatsapp/stop-words", headers=tenant.headers)).json()
    assert defaults == {
        "stop_words": ["STOP", "UNSUBSCRIBE", "הסר", "הסרה", "עצור"],
        "default": True,
    }
    response = await client.put(
        "/api/whatsapp/stop-words", json={"stop_words": ["בטל", "Cancel"]}, headers=tenant.headers
    )
    assert response.json() == {"stop_words": ["בטל", "Cancel"], "default": False}
    await inbound(client, tenant, "+972500000001", "STOP")
    await inbound(client, tenant, "+972500000002", " בטל ")
    await inbound(client, tenant, "+972500000003", "CANCEL")
    assert sorted(await listed(client, tenant)) == ["+972500000002", "+972500000003"]

    refused = await client.put(
        "/api/whatsapp/stop-words", json={"stop_words": ["!!"]}, headers=tenant.headers
    )
    assert (refused.status_code, refused.json()["error_code"]) == (422, "VALIDATION_ERROR")
    restored = await client.put(
        "/api/whatsapp/stop-words", json={"stop_words": None}, headers=tenant.headers
    )
    assert restored.json()["default"] is True


async def test_a_stop_word_through_the_baileys_gateway_webhook_opts_its_sender_out(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    config = {"base_url": "http://127.0.0.1:9", "token": "gateway-token-1"}
    await add_session(client, tenant, "phone_1", "baileys", config)
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, "phone_1")
        assert row is not None
        secret = row.webhook_secret
    for message_id, sender, text in [
        ("in-1", "972502345671", "hello"),
        ("in-2", "972502345672", "הסר"),
        ("in-3", "972502345673@s.whatsapp.net", "STOP"),
    ]:
        data = {"message_id": message_id, "from": sender, "text": text, "timestamp": 1}
        body = json.dumps(
            {
                "event": "message.inbound",
                "session_id": "phone_1",
                "at": ctx.clock.now().isoformat(),
                "data": data,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Wabroadcast-Session": "phone_1",
            "X-Wabroadcast-Signature": baileys_sign(secret, body),
        }
        hook = await client.post("/api/whatsapp/webhooks/baileys", content=body, headers=headers)
        assert hook.status_code == 200, hook.text
    assert sorted(await listed(client, tenant)) == ["+972502345672", "+972502345673"]


async def test_a_number_taken_off_the_list_is_sent_to_again(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await opt_out(client, tenant, ["+972502345678"])
    response = await client.delete(f"{OPT_OUTS}/050-234-5678", headers=tenant.headers)
    assert response.status_code == 204, response.text
    missing = await client.delete(f"{OPT_OUTS}/0502345678", headers=tenant.headers)
    assert missing.status_code == 404
    assert missing.json()["success"] is False
    assert (missing.json()["error_code"], missing.json()["details"]) == (
        "OPT_OUT_NOT_FOUND",
        {"phone": "+972502345678"},
    )
    bad = await client.delete(f"{OPT_OUTS}/not-a-phone", headers=tenant.headers)
    assert (bad.status_code, bad.json()["error_code"]) == (422, "VALIDATION_ERROR")

    broadcast_id = await create(client, tenant, ["0502345678"])
    await drain(ctx, clock)
    assert await sent_phones(client, tenant) == ["+972502345678"]
    assert (await broadcast(client, tenant, broadcast_id))["sent_count"] == 1


async def test_the_list_is_paged_newest_first_and_filtered_by_any_spelling(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other_tenant = await make_tenant(ctx, "Other")
    numbers = il_numbers(7)
    for number in numbers:  # one request each: newest first is the reverse order
        await opt_out(client, tenant, [number])
    await opt_out(client, other_tenant, [numbers[0], "+972529999999"])
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(OPT_OUTS, params=params, headers=tenant.headers)).json()
        pages.append([item["phone"] for item in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [phone for page in pages for phone in page] == numbers[::-1]

    found = await client.get(OPT_OUTS, params={"phone": "050-000-0004"}, headers=tenant.headers)
    assert [item["phone"] for item in found.json()["items"]] == [numbers[4]]
    none = await client.get(OPT_OUTS, params={"phone": "052-999-9999"}, headers=tenant.headers)
    assert none.json()["items"] == []
    bad = await client.get(OPT_OUTS, params={"cursor": "nope"}, headers=tenant.headers)
    assert (bad.status_code, bad.json()["error_code"]) == (422, "VALIDATION_ERROR")


async def test_a_csv_file_is_imported_with_the_broadcasts_importer(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await opt_out(client, tenant, ["0502345678"])
    data = "שם,טלפון\nDana,050-234-5678\nNoa,+972 52 345 6789\nAvi,053 345 6789\nX,12\n"
    response = await client.post(
        OPT_OUTS,
        files={"file": ("stop.csv", data.encode(), "text/csv")},
        data={"reason": "unsubscribed list"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["added_count"], body["already_count"], body["invalid_count"]) == (2, 1, 1)
    assert body["added"] == ["+972523456789", "+972533456789"]
    async with ctx.database.transaction() as db:
        rows = (
            await db.execute(select(OptOut).where(OptOut.source == "import").order_by(OptOut.id))
        ).scalars()
        assert [(r.phone, r.reason) for r in rows] == [
            ("+972523456789", "unsubscribed list"),
            ("+972533456789", "unsubscribed list"),
        ]

    no_phones = await client.post(
        OPT_OUTS,
        files={"file": ("x.csv", b"name,city\nDana,Haifa\n", "text/csv")},
        headers=tenant.headers,
    )
    assert (no_phones.status_code, no_phones.json()["error_code"]) == (422, "NO_PHONE_COLUMN")


async def test_bad_opt_out_requests_are_4xx_envelopes(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    bodies: list[dict[str, Any]] = [
        {"phones": []},
        {"phones": ["0502345678\x00"]},
        {"phone": "0502345678"},
    ]
    for body in bodies:
        response = await client.post(OPT_OUTS, json=body, headers=tenant.headers)
        assert (response.status_code, response.json()["error_code"]) == (422, "VALIDATION_ERROR")
    unauthorized = await client.get(OPT_OUTS)
    assert unauthorized.status_code == 401
    bad_sender = await client.post(
        INBOUND, json={"from": "hello", "text": "STOP"}, headers=tenant.headers
    )
    assert bad_sender.status_code == 422


def _cloud_messages_webhook(phone_number_id: str, messages: list[dict[str, object]]) -> bytes:
    """The body Meta posts when people write to the number: ``messages[]`` in a change."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Dana"}, "wa_id": "972502345671"}],
        "messages": messages,
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document).encode()


async def test_a_stop_word_through_the_cloud_api_webhook_opts_its_sender_out(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    config = {
        "phone_number_id": "1055",
        "access_token": "token-1",
        "app_secret": "app-secret-1",
        "verify_token": "verify-1",
        "graph_base_url": "http://127.0.0.1:9",
    }
    await add_session(client, tenant, "meta_1", "cloud_api", config)
    at = str(int(ctx.clock.now().timestamp()))
    messages: list[dict[str, object]] = [
        {
            "from": "972502345671",
            "id": "wamid.1",
            "timestamp": at,
            "type": "text",
            "text": {"body": "Thanks!"},
        },
        {
            "from": "972502345672",
            "id": "wamid.2",
            "timestamp": at,
            "type": "text",
            "text": {"body": " stop "},
        },
        {
            "from": "972502345673",
            "id": "wamid.3",
            "timestamp": at,
            "type": "button",
            "button": {"text": "הסרה", "payload": "unsubscribe"},
        },
        {
            "from": "972502345674",
            "id": "wamid.4",
            "timestamp": at,
            "type": "image",
            "image": {"id": "media-1"},
        },
    ]
    another_number: list[dict[str, object]] = [
        {
            "from": "972502345675",
            "id": "wamid.5",
            "timestamp": at,
            "type": "text",
            "text": {"body": "STOP"},
        }
    ]
    answers = []
    # The second call names another number: no session of ours, refused.
    for phone_number_id, sent in (("1055", messages), ("2077", another_number)):
        body = _cloud_messages_webhook(phone_number_id, sent)
        digest = hmac.new(b"app-secret-1", body, hashlib.sha256).hexdigest()
        hook = await client.post(
            "/api/whatsapp/webhooks/cloud_api",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"},
        )
        answers.append(hook.status_code)
    assert answers == [200, 401]
    assert sorted(await listed(client, tenant)) == ["+972502345672", "+972502345673"]
    async with ctx.database.transaction() as db:
        stored = (
            await db.execute(select(func.count()).select_from(InboundMessageRow))
        ).scalar_one()
    assert stored == 4


async def test_a_stop_word_through_the_waha_webhook_opts_its_sender_out(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    config = {"base_url": "http://127.0.0.1:9", "api_key": "k" * 16, "hmac_key": "h" * 16}
    await add_session(client, tenant, "waha_1", "waha", config)
    at = int(ctx.clock.now().timestamp())

    def event(message_id: str, sender: str, text: str, *, from_me: bool = False) -> bytes:
        payload = {"id": message_id, "timestamp": at, "from": sender, "fromMe": from_me}
        document = {"event": "message", "session": "default", "payload": {**payload, "body": text}}
        return json.dumps(document).encode()

    for body in (
        event("false_972502345671@c.us_A1", "972502345671@c.us", "hello"),
        event("false_972502345672@c.us_A2", "972502345672@c.us", "STOP!"),
        event("true_972502345673@c.us_A3", "972502345673@c.us", "STOP", from_me=True),
        event("false_120363@g.us_A4", "120363000000000001@g.us", "STOP"),
        event("false_972502345675@c.us_A5", "972502345675@c.us", "עצור"),
    ):
        hook = await client.post(
            "/api/whatsapp/webhooks/waha/waha_1",
            content=body,
            headers=waha_signed("h" * 16, body),
        )
        assert hook.status_code == 200, hook.text
    assert sorted(await listed(client, tenant)) == ["+972502345672", "+972502345675"]


async def test_a_stop_word_through_the_evolution_webhook_opts_its_sender_out(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    fake = FakeEvolution(api_key="EVOLUTION-GLOBAL-KEY-0001")
    fake.add_instance("shop1")
    with serve_fake_evolution(fake) as base_url:
        config = {
            "base_url": base_url + "/",
            "api_key": "EVOLUTION-GLOBAL-KEY-0001",
            "instance": "shop1",
        }
        await add_session(client, tenant, "evo_1", "evolution", config)
        await ctx.providers.aclose()
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, "evo_1")
        assert row is not None
        secret = row.webhook_secret
    at = int(ctx.clock.now().timestamp())
    items = [
        {
            "key": {"remoteJid": "972502345671@s.whatsapp.net", "fromMe": False, "id": "E1"},
            "message": {"conversation": "הסר"},
            "messageTimestamp": at,
        },
        {
            # A sender known by a @lid, with its number alongside.
            "key": {
                "remoteJid": "1234567890@lid",
                "senderPn": "972502345672@s.whatsapp.net",
                "fromMe": False,
                "id": "E2",
            },
            "message": {"extendedTextMessage": {"text": " Unsubscribe "}},
            "messageTimestamp": at,
        },
        {
            "key": {"remoteJid": "972502345673@s.whatsapp.net", "fromMe": True, "id": "E3"},
            "message": {"conversation": "STOP"},
            "messageTimestamp": at,
        },
        {
            "key": {"remoteJid": "972502345674@s.whatsapp.net", "fromMe": False, "id": "E4"},
            "message": {"conversation": "Is the shop open?"},
            "messageTimestamp": at,
        },
    ]
    for item in items:
        body = json.dumps(evolution_envelope("messages.upsert", item)).encode()
        hook = await client.post(
            "/api/whatsapp/webhooks/evolution/evo_1",
            content=body,
            headers=evolution_headers(secret),
        )
        assert hook.status_code == 200, hook.text
    assert sorted(await listed(client, tenant)) == ["+972502345671", "+972502345672"]
