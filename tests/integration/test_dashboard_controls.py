"""The dashboard's campaign controls over HTTP on both databases, time frozen.

The browser tests (tests/e2e/test_dashboard_controls.py) drive the same forms through
Chromium; these check the server's side exactly: the schedule field's time and offset,
each control's confirmation, what the page then shows.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.dispatch import broadcast, drain, scenario, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext

API = "/api/whatsapp/broadcasts"
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


def text_of(page: httpx.Response) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


@pytest.fixture
async def browser(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def csrf(browser: httpx.AsyncClient, tenant: TenantFixture) -> str:
    """Signed in through the form; the session's CSRF token."""
    form = await browser.get("/sign-in")
    token = TOKEN_FIELD.search(form.text)
    assert token is not None
    signed_in = await browser.post(
        "/sign-in", data={"csrf_token": token.group(1), "api_key": tenant.api_key, "next": "/"}
    )
    assert signed_in.status_code == 303, signed_in.text
    found = TOKEN_FIELD.search((await browser.get("/")).text)
    assert found is not None
    return found.group(1)


async def submit(browser: httpx.AsyncClient, csrf: str, **fields: str) -> httpx.Response:
    form = {"csrf_token": csrf, "message": "Soon", "recipients": "0502345678\n0523456789"}
    return await browser.post("/broadcasts", data={**form, **fields})


def created_id(response: httpx.Response) -> int:
    assert response.status_code == 303, text_of(response)[:500]
    found = re.match(r"/broadcasts/(\d+)\?created=true", response.headers["location"])
    assert found is not None, response.headers["location"]
    return int(found.group(1))


# --- the schedule field ----------------------------------------------------------------


async def test_the_schedule_field_is_local_time_at_the_browsers_offset_else_utc(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    clock: FrozenClock,
    csrf: str,
) -> None:
    start = (clock.now() + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
    local = start.strftime("%Y-%m-%dT%H:%M")
    # dashboard.js sends the offset east of UTC in minutes: Jerusalem in winter is +120.
    with_offset = created_id(
        await submit(browser, csrf, send_at=local, send_at_offset="120", idempotency_key="a")
    )
    body = await broadcast(client, tenant, with_offset)
    assert body["status"] == "scheduled"
    assert datetime.fromisoformat(body["send_at"]) == start - timedelta(hours=2)
    # Without JavaScript there is no offset: the time is UTC, as the form says.
    in_utc = created_id(
        await submit(browser, csrf, send_at=local, message="Soon, UTC", idempotency_key="b")
    )
    assert datetime.fromisoformat((await broadcast(client, tenant, in_utc))["send_at"]) == start

    shown = await browser.get(f"/broadcasts/{with_offset}?created=true")
    expected = (start - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f'data-proof-scheduled>Scheduled: sending starts <time datetime="{expected}"' in (
        shown.text
    )
    assert 'data-waiting="scheduled"' in shown.text
    assert "Pause sending" not in shown.text
    assert "Cancel broadcast" in shown.text

    new_form = await browser.get("/broadcasts/new")
    assert 'type="datetime-local" id="send_at" name="send_at"' in new_form.text
    assert "The time is in UTC." in new_form.text


@pytest.mark.parametrize(
    ("send_at", "offset", "sentence"),
    [
        ("yesterday at nine", "", "The send time could not be read"),
        ("2026-12-24T09:00", "9999", "The send time could not be read"),
        ("past", "", "The send time is in the past"),
        ("far", "", "The send time is more than 90 days ahead"),
    ],
)
async def test_a_send_time_that_cannot_be_used_is_a_sentence_and_nothing_is_stored(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    clock: FrozenClock,
    csrf: str,
    send_at: str,
    offset: str,
    sentence: str,
) -> None:
    moments = {"past": timedelta(hours=-1), "far": timedelta(days=91)}
    if send_at in moments:
        send_at = (clock.now().astimezone(UTC) + moments[send_at]).strftime("%Y-%m-%dT%H:%M")
    answer = await submit(browser, csrf, send_at=send_at, send_at_offset=offset)
    assert answer.status_code in {400, 422}
    assert sentence in text_of(answer)
    assert ">Soon</textarea>" in answer.text  # what was typed is shown again
    listed = await client.get(API, headers=tenant.headers)
    assert listed.json()["items"] == []


# --- pause, resume, retry: each needs its tick ------------------------------------------


async def test_pause_and_resume_need_the_tick_and_change_the_status(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    csrf: str,
) -> None:
    created = await client.post(
        API, json={"message": "hold on", "recipients": il_numbers(3)}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert 'id="pause-form"' in page.text

    refused = await browser.post(f"/broadcasts/{broadcast_id}/pause", data={"csrf_token": csrf})
    assert refused.status_code == 400
    assert f"Tick “Yes, pause broadcast #{broadcast_id}” to confirm" in text_of(refused)
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "queued"
    forged = await browser.post(f"/broadcasts/{broadcast_id}/pause", data={"confirm": "yes"})
    assert forged.status_code == 403

    paused = await browser.post(
        f"/broadcasts/{broadcast_id}/pause", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert paused.headers["location"] == f"/broadcasts/{broadcast_id}?notice=paused"
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "paused"
    shown = text_of(await browser.get(paused.headers["location"]))
    assert "The broadcast was paused: nothing new is sent until you resume it." in shown
    assert "Paused by hand; resume it to send the rest." in shown
    assert "Resume sending" in shown
    # Paused by hand is not WhatsApp holding the account: the header stays "connected".
    assert 'data-state="connected"' in (await browser.get(f"/broadcasts/{broadcast_id}")).text

    unticked = await browser.post(f"/broadcasts/{broadcast_id}/resume", data={"csrf_token": csrf})
    assert unticked.status_code == 400
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "paused"
    resumed = await browser.post(
        f"/broadcasts/{broadcast_id}/resume", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert resumed.headers["location"] == f"/broadcasts/{broadcast_id}?notice=resumed"
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "queued"
    # The address of a refused control, reloaded, is the broadcast's page.
    again = await browser.get(f"/broadcasts/{broadcast_id}/pause")
    assert again.headers["location"] == f"/broadcasts/{broadcast_id}"


async def test_retry_failed_offers_the_codes_that_may_pass_and_says_how_many(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    csrf: str,
) -> None:
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(4)
    await scenario(
        client,
        tenant,
        fail_numbers={
            numbers[0]: "SERVER_ERROR",
            numbers[1]: "SERVER_ERROR",
            numbers[2]: "NOT_ON_WHATSAPP",
        },
    )
    created = await client.post(
        API, json={"message": "again", "recipients": numbers}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    await drain(ctx, clock)
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', page.text)
    retry_options = [o for o in options if o[0] in {"", "SERVER_ERROR", "NOT_ON_WHATSAPP"}]
    assert ("", "Every failure that may pass (2)") in retry_options
    assert ("SERVER_ERROR", "SERVER_ERROR · The provider failed with a server error. (2)") in (
        retry_options
    )
    assert all(code != "NOT_ON_WHATSAPP" for code, _ in retry_options)

    await scenario(client, tenant, fail_numbers={numbers[2]: "NOT_ON_WHATSAPP"})
    unticked = await browser.post(
        f"/broadcasts/{broadcast_id}/retry-failed",
        data={"csrf_token": csrf, "error_code": "SERVER_ERROR"},
    )
    assert unticked.status_code == 400
    retried = await browser.post(
        f"/broadcasts/{broadcast_id}/retry-failed",
        data={"csrf_token": csrf, "error_code": "SERVER_ERROR", "confirm": "yes"},
    )
    location = retried.headers["location"]
    assert location == f"/broadcasts/{broadcast_id}?notice=requeued&requeued=2"
    assert "2 requeued: the failed recipients are sent again." in text_of(
        await browser.get(location)
    )
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "running"
    await drain(ctx, clock)
    final = await broadcast(client, tenant, broadcast_id)
    assert (final["status"], final["sent_count"], final["failed_count"]) == ("partial", 3, 1)
    shown = text_of(await browser.get(f"/broadcasts/{broadcast_id}"))
    assert "None of the failures can pass by sending again" in shown
    nothing = await browser.post(
        f"/broadcasts/{broadcast_id}/retry-failed", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert nothing.headers["location"].endswith("notice=requeued&requeued=0")


# --- what the pages show ----------------------------------------------------------------


async def test_a_cancelled_broadcast_shows_what_happened_and_the_proof_lists_invalid_inputs(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    csrf: str,
) -> None:
    broadcast_id = created_id(
        await submit(browser, csrf, recipients="0502345678\n0523456789\n0502345678\n123\nhello")
    )
    proof = await browser.get(f"/broadcasts/{broadcast_id}?created=true")
    text = text_of(proof)
    assert "2 recipients queued, 2 invalid (not stored), 1 duplicate removed." in text
    assert "queued_count" not in text
    assert "123 — too short (under 9 digits)" in text
    assert "hello — not a phone number" in text

    await browser.post(f"/broadcasts/{broadcast_id}/cancel", data={"csrf_token": csrf})
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"], body["cancelled_count"]) == ("cancelled", 0, 2)
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert '<span class="progress-text">0/2 · 2 cancelled</span>' in page.text
    assert "100%" not in page.text
    listed = await browser.get("/")
    assert "0/2 · 2 cancelled" in listed.text
    # The filter applies itself; its button is for browsers without JavaScript.
    assert '<noscript><button type="submit">Filter</button></noscript>' in listed.text


async def test_the_header_says_when_whatsapp_holds_the_account_and_reasons_are_translated(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    csrf: str,
) -> None:
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(2)
    await scenario(client, tenant, fail_numbers={numbers[0]: "ACCOUNT_RESTRICTED"})
    created = await client.post(
        API, json={"message": "held", "recipients": numbers}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    await drain(ctx, clock)
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "paused"
    # Every page's header says so, the sessions pages too.
    for path in ("/", "/sessions", "/sessions/new", f"/sessions/{tenant.session_id}/edit"):
        page = await browser.get(path)
        assert page.status_code == 200, path
        assert 'data-state="held"' in page.text, path
        assert "WhatsApp connected, sending paused" in page.text, path
        assert f'data-account-hold="{broadcast_id}"' in page.text, path

    browser.cookies.set("wab_lang", "he")
    hebrew = await browser.get(f"/broadcasts/{broadcast_id}")
    shown = text_of(hebrew)
    assert "WhatsApp מחובר, השליחה מושהית" in shown
    # The reason reads right to left although it starts with a Latin word.
    assert "סיבה: \u2067WhatsApp הגביל את החשבון הזה" in shown
    assert "+972 50-000-0000" in shown


async def test_recipients_skipped_after_an_opt_out_are_counted_and_explained(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    numbers = il_numbers(3)
    created = await client.post(
        API, json={"message": "before the stop", "recipients": numbers}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    opted = await client.post(
        "/api/whatsapp/opt-outs", json={"phones": [numbers[1]]}, headers=tenant.headers
    )
    assert opted.json()["skipped_count"] == 1, opted.text
    page = text_of(await browser.get(f"/broadcasts/{broadcast_id}"))
    assert "Skipped (opted out) 1" in page
    assert "skipped" in page
    assert "Not sent: the number opted out." in page

    browser.cookies.set("wab_lang", "he")
    hebrew = text_of(await browser.get(f"/broadcasts/{broadcast_id}"))
    assert "דולגו (הוסרו מהרשימה) 1" in hebrew
    assert "לא נשלחה: המספר ביקש להסיר אותו מהרשימה." in hebrew
