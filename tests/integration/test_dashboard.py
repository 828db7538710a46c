"""The dashboard over HTTP on both databases: sign-in, CSRF, pages, forms, export, metrics.

The browser tests (tests/e2e/test_dashboard.py) drive the same pages through
Chromium; these check the server's side of every promise quickly and exactly.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import update

from tests.support.dispatch import broadcast, drain, scenario, unpaced
from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.tenants.service import TenantContext, authenticate
from wabroadcast.web import metrics_source, pages
from wabroadcast.web.sessions import SESSION_TTL

API = "/api/whatsapp/broadcasts"
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')
KEY_FIELD = re.compile(r'name="idempotency_key" value="([^"]*)"')


def field(pattern: re.Pattern[str], page: str) -> str:
    found = pattern.search(page)
    assert found is not None, page[:2000]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, tenant: TenantFixture) -> str:
    """Sign in through the form; the session's CSRF token, as its pages carry it."""
    form = await client.get("/sign-in")
    token = field(TOKEN_FIELD, form.text)
    response = await client.post(
        "/sign-in", data={"csrf_token": token, "api_key": tenant.api_key, "next": "/"}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    home = await client.get("/")
    assert home.status_code == 200
    return field(TOKEN_FIELD, home.text)


@pytest.fixture
async def browser(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like a browser of its own."""
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def csrf(browser: httpx.AsyncClient, tenant: TenantFixture) -> str:
    return await sign_in(browser, tenant)


def text_of(page: httpx.Response) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


# --- signing in ------------------------------------------------------------------


async def test_pages_need_a_signed_in_session(browser: httpx.AsyncClient) -> None:
    home = await browser.get("/")
    assert (home.status_code, home.headers["location"]) == (303, "/sign-in")
    deep = await browser.get("/broadcasts/5?status=failed")
    assert deep.headers["location"] == "/sign-in?next=%2Fbroadcasts%2F5%3Fstatus%3Dfailed"
    poll = await browser.get("/", headers={"X-Live-Refresh": "1"})
    assert poll.status_code == 401


async def test_sign_in_sets_a_strict_http_only_session_cookie(
    browser: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    form = await browser.get("/sign-in?next=/broadcasts/new")
    assert form.status_code == 200
    assert "wab_signin=" in form.headers["set-cookie"]
    response = await browser.post(
        "/sign-in",
        data={
            "csrf_token": field(TOKEN_FIELD, form.text),
            "api_key": f"  {tenant.api_key} ",
            "next": "/broadcasts/new",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/broadcasts/new"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("wab_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    page = await browser.get("/broadcasts/new")
    assert page.status_code == 200
    assert "Acme" in page.text


async def test_a_wrong_key_or_a_missing_form_token_signs_nobody_in(
    browser: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    form = await browser.get("/sign-in")
    token = field(TOKEN_FIELD, form.text)
    wrong = await browser.post("/sign-in", data={"csrf_token": token, "api_key": "wab_nope"})
    assert wrong.status_code == 401
    assert "That API key is not valid." in wrong.text
    assert "wab_session" not in wrong.headers.get("set-cookie", "")
    forged = await browser.post("/sign-in", data={"api_key": tenant.api_key})
    assert forged.status_code == 403
    assert "The sign-in form expired" in forged.text
    assert (await browser.get("/")).status_code == 303


async def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(
    browser: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    stolen = browser.cookies.get("wab_session")
    assert stolen
    refused = await browser.post("/sign-out", data={})
    assert refused.status_code == 403
    assert (await browser.get("/")).status_code == 200
    response = await browser.post("/sign-out", data={"csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/sign-in?signed_out=true",
    )
    assert (await browser.get("/")).status_code == 303
    replayed = await browser.get("/", headers={"Cookie": f"wab_session={stolen}"})
    assert replayed.status_code == 303
    assert "You are signed out." in (await browser.get("/sign-in?signed_out=true")).text


async def test_a_session_expires(
    browser: httpx.AsyncClient, tenant: TenantFixture, csrf: str, clock: FrozenClock
) -> None:
    clock.advance(SESSION_TTL.total_seconds() - 1)
    assert (await browser.get("/")).status_code == 200
    clock.advance(2)
    assert (await browser.get("/")).status_code == 303


# --- cross-site requests ---------------------------------------------------------


async def test_forms_without_the_session_csrf_token_change_nothing(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    forged = await browser.post(
        "/broadcasts",
        data={"message": "forged", "recipients": "0502345678", "csrf_token": "guess"},
    )
    assert forged.status_code == 403
    assert "did not come from this dashboard" in forged.text
    assert await row_counts_for(client, tenant) == 0
    created = await client.post(
        API, json={"message": "real", "recipients": il_numbers(2)}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    no_token = await browser.post(f"/broadcasts/{broadcast_id}/cancel")
    assert no_token.status_code == 403
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "queued"
    with_token = await browser.post(f"/broadcasts/{broadcast_id}/cancel", data={"csrf_token": csrf})
    assert with_token.headers["location"] == f"/broadcasts/{broadcast_id}?notice=cancelled"
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "cancelled"


async def row_counts_for(client: httpx.AsyncClient, tenant: TenantFixture) -> int:
    listed = await client.get(API, headers=tenant.headers)
    return len(listed.json()["items"])


async def test_another_tenants_broadcast_is_a_friendly_404(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, ctx: AppContext, csrf: str
) -> None:
    other = await make_tenant(ctx, name="Other")
    created = await client.post(
        API, json={"message": "theirs", "recipients": il_numbers(1)}, headers=other.headers
    )
    page = await browser.get(f"/broadcasts/{created.json()['broadcast_id']}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text
    assert "theirs" not in page.text
    bad_filter = await browser.get("/?status=bogus")
    assert bad_filter.status_code == 422
    assert bad_filter.headers["content-type"].startswith("text/html")


# --- the new-broadcast form --------------------------------------------------------


async def test_preview_counts_valid_invalid_and_duplicates(
    browser: httpx.AsyncClient, csrf: str
) -> None:
    response = await browser.post(
        "/broadcasts/preview",
        data={
            "csrf_token": csrf,
            "message": "",
            "recipients": "0502345678\n+972502345678, 0523456789\n123\nhello\n050 234 5678",
        },
        headers={"X-Fragment": "1"},
    )
    assert response.status_code == 200
    text = text_of(response)
    assert "Valid recipients to queue 2" in text
    assert "Invalid (will not be stored) 2" in text
    assert "Duplicates removed 2" in text
    assert "too short (under 9 digits): 1" in text
    assert "not a phone number: 1" in text
    assert await broadcasts_listed(browser) == 0


async def broadcasts_listed(browser: httpx.AsyncClient) -> int:
    page = await browser.get("/")
    return page.text.count("data-broadcast-id=")


async def test_preview_without_javascript_renders_the_whole_form(
    browser: httpx.AsyncClient, csrf: str
) -> None:
    response = await browser.post(
        "/broadcasts/preview",
        data={"csrf_token": csrf, "message": "Hello <b>", "recipients": "0502345678"},
    )
    assert response.status_code == 200
    assert "Hello &lt;b&gt;</textarea>" in response.text
    assert "Valid recipients to queue 1" in text_of(response)


async def test_submit_shows_the_proof_and_a_resubmission_creates_nothing(
    browser: httpx.AsyncClient, ctx: AppContext, csrf: str
) -> None:
    form = await browser.get("/broadcasts/new")
    key = field(KEY_FIELD, form.text)
    body = {
        "csrf_token": csrf,
        "idempotency_key": key,
        "message": "Sale\r\ntomorrow",
        "recipients": "0502345678, 0523456789\n123\n0502345678",
    }
    first = await browser.post("/broadcasts", data=body)
    assert first.status_code == 303
    location = first.headers["location"]
    assert re.fullmatch(r"/broadcasts/\d+\?created=true", location)
    again = await browser.post("/broadcasts", data=body)
    assert again.headers["location"] == location + "&replayed=true"
    assert await row_counts(ctx) == (1, 2)
    proof = await browser.get(location)
    text = text_of(proof)
    assert "Broadcast accepted" in text
    assert "2 recipients queued, 1 invalid (not stored), 1 duplicate removed" in text
    assert 'data-proof="queued_count">2<' in proof.text
    assert "Sale\ntomorrow" in proof.text
    replayed = await browser.get(again.headers["location"])
    assert "no second broadcast was created" in replayed.text
    other_form = field(KEY_FIELD, (await browser.get("/broadcasts/new")).text)
    assert other_form != key


async def test_a_reused_form_with_another_message_is_refused_with_a_fresh_form(
    browser: httpx.AsyncClient, ctx: AppContext, csrf: str
) -> None:
    body = {"csrf_token": csrf, "idempotency_key": "web-k1", "recipients": "0502345678"}
    assert (await browser.post("/broadcasts", data={**body, "message": "one"})).status_code == 303
    second = await browser.post("/broadcasts", data={**body, "message": "two"})
    assert second.status_code == 422
    assert "already used for a different broadcast" in second.text
    assert field(KEY_FIELD, second.text) != "web-k1"
    assert await row_counts(ctx) == (1, 1)


async def test_refusals_are_sentences_next_to_the_form(
    browser: httpx.AsyncClient, ctx: AppContext, csrf: str
) -> None:
    base = {"csrf_token": csrf, "idempotency_key": "web-k2"}
    empty = await browser.post("/broadcasts", data={**base, "message": "hi", "recipients": ""})
    assert empty.status_code == 400
    assert "Add at least one phone number or a CSV file." in empty.text
    invalid = await browser.post(
        "/broadcasts", data={**base, "message": "hi", "recipients": "123\nabc"}
    )
    assert invalid.status_code == 400
    text = text_of(invalid)
    assert "None of the 2 recipients is a valid phone number." in text
    assert "too short (under 9 digits): 1" in text
    assert "123 — too short" in text
    assert '"error_code"' not in invalid.text
    blank = await browser.post("/broadcasts", data={**base, "message": "  ", "recipients": "1"})
    assert blank.status_code == 400
    assert "Write the message to send." in blank.text
    assert await row_counts(ctx) == (0, 0)


async def test_a_recipient_that_cannot_be_stored_is_named_next_to_the_form(
    browser: httpx.AsyncClient, ctx: AppContext, csrf: str
) -> None:
    """A NUL in a pasted number: the form says which recipient, not "write the message"."""
    response = await browser.post(
        "/broadcasts",
        data={
            "csrf_token": csrf,
            "idempotency_key": "web-k3",
            "message": "hi",
            "recipients": "0502345678\n05023\u00004567",
        },
    )
    assert response.status_code == 400
    text = text_of(response)
    assert "is not valid (recipients.1" in text
    assert "Write the message to send." not in text
    assert await row_counts(ctx) == (0, 0)


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "WhatsApp is not connected. Connect first."), ("he", "WhatsApp לא מחובר")],
)
async def test_a_disconnected_session_shows_the_banner_and_the_503_message(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
    language: str,
    expected: str,
) -> None:
    await scenario(client, tenant, connected=False)
    browser.cookies.set("wab_lang", language)
    page = await browser.get("/broadcasts/new")
    assert 'class="banner" role="alert"' in page.text
    response = await browser.post(
        "/broadcasts",
        data={"csrf_token": csrf, "message": "hi", "recipients": "0502345678"},
    )
    assert response.status_code == 503
    assert expected in response.text
    assert f'lang="{language}"' in response.text
    assert await row_counts(ctx) == (0, 0)


async def test_a_csv_upload_keeps_names_and_lead_ids(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    contacts = "\ufeffname,phone,lead_id\r\nנועה,052-345-6789,7\r\nDan,0533456789,\r\n"
    response = await browser.post(
        "/broadcasts",
        data={"csrf_token": csrf, "message": "hi", "recipients": "0502345678"},
        files={"csv_file": ("contacts.csv", contacts.encode("utf-8"), "text/csv")},
    )
    assert response.status_code == 303
    broadcast_id = int(response.headers["location"].split("/")[2].split("?")[0])
    listed = await client.get(f"{API}/{broadcast_id}/recipients", headers=tenant.headers)
    assert [(r["phone"], r["lead_id"], r["name"]) for r in listed.json()["items"]] == [
        ("+972502345678", None, None),
        ("+972523456789", 7, "נועה"),
        ("+972533456789", None, "Dan"),
    ]
    not_utf8 = await browser.post(
        "/broadcasts",
        data={"csrf_token": csrf, "message": "hi"},
        files={"csv_file": ("c.csv", "phone\n0502345678\nשם".encode("cp1255"), "text/csv")},
    )
    assert not_utf8.status_code == 400
    assert "The CSV file must be UTF-8 or UTF-16 text." in not_utf8.text
    assert "Choose the CSV file again" in not_utf8.text
    unclosed = await browser.post(
        "/broadcasts",
        data={"csrf_token": csrf, "message": "hi"},
        files={"csv_file": ("c.csv", b'phone\n"' + b"0" * 200_000, "text/csv")},
    )
    assert unclosed.status_code == 400
    assert "The file could not be read as CSV (field larger than field limit" in text_of(unclosed)


@pytest.mark.parametrize(
    "contacts",
    [
        "Name,Phone Number\r\nנועה,052-345-6789\r\nDan,0533456789\r\n".encode(),
        "name;phone;lead_id\nנועה;052-345-6789;\nDan;0533456789;\n".encode(),
        "\ufeffשם,טלפון נייד,עיר\nנועה,052-345-6789,חיפה\nDan,0533456789,\n".encode(),
        b"\xff\xfe" + "שם\tנייד\r\nנועה\t052-345-6789\r\nDan\t0533456789\r\n".encode("utf-16-le"),
    ],
    ids=["name-phone-number", "semicolons", "hebrew-headers", "utf16-excel"],
)
async def test_a_csv_upload_of_real_files(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    csrf: str,
    contacts: bytes,
) -> None:
    response = await browser.post(
        "/broadcasts",
        data={"csrf_token": csrf, "message": "hi"},
        files={"csv_file": ("contacts.csv", contacts, "text/csv")},
    )
    assert response.status_code == 303, text_of(response)
    broadcast_id = int(response.headers["location"].split("/")[2].split("?")[0])
    listed = await client.get(f"{API}/{broadcast_id}/recipients", headers=tenant.headers)
    assert [(r["phone"], r["name"]) for r in listed.json()["items"]] == [
        ("+972523456789", "נועה"),
        ("+972533456789", "Dan"),
    ]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "No phone column found in the CSV file (columns seen: Name, Email)."),
        ("he", "לא נמצאה עמודת טלפון בקובץ ה־CSV (העמודות שנמצאו: Name, Email)."),
    ],
)
async def test_a_csv_upload_without_a_phone_column_says_so(
    browser: httpx.AsyncClient,
    ctx: AppContext,
    csrf: str,
    language: str,
    expected: str,
) -> None:
    browser.cookies.set("wab_lang", language)
    for action in ("/broadcasts/preview", "/broadcasts"):
        response = await browser.post(
            action,
            data={"csrf_token": csrf, "message": "hi"},
            files={"csv_file": ("c.csv", b"Name,Email\nNoa,noa@example.com\n", "text/csv")},
        )
        assert response.status_code == 400, action
        assert expected in text_of(response), action
    assert await row_counts(ctx) == (0, 0)


# --- the broadcast page ----------------------------------------------------------


async def test_recipients_page_by_cursor_and_filter_by_status(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    numbers = il_numbers(120)
    created = await client.post(
        API, json={"message": "many", "recipients": numbers}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    await fail_recipients(ctx, broadcast_id, numbers[::7])
    seen: list[str] = []
    path: str | None = f"/broadcasts/{broadcast_id}"
    while path:
        page = await browser.get(path)
        assert page.status_code == 200
        seen += re.findall(r'data-phone="([^"]+)"', page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        path = html.unescape(found.group(1)) if found else None
    assert seen == numbers
    failed_page = await browser.get(f"/broadcasts/{broadcast_id}?status=failed")
    assert re.findall(r'data-phone="([^"]+)"', failed_page.text) == numbers[::7]
    assert "NOT_ON_WHATSAPP" in failed_page.text
    assert 'rel="next"' not in failed_page.text


async def fail_recipients(ctx: AppContext, broadcast_id: int, phones: list[str]) -> None:
    """Mark recipients failed as the dispatcher would, counters included."""
    now = ctx.clock.now()
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppBroadcastRecipient)
            .where(
                WhatsAppBroadcastRecipient.broadcast_id == broadcast_id,
                WhatsAppBroadcastRecipient.phone.in_(phones),
            )
            .values(
                status="failed",
                attempts=1,
                error_code="NOT_ON_WHATSAPP",
                error_message="This number is not on WhatsApp.",
                failed_at=now,
            )
        )
        await session.execute(
            update(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.id == broadcast_id)
            .values(
                queued_count=WhatsAppBroadcast.queued_count - len(phones),
                failed_count=len(phones),
            )
        )


async def test_failed_recipients_export_streams_every_page(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    numbers = il_numbers(1_100)
    recipients: list[object] = [*numbers[:-1], {"phone": numbers[-1], "name": "=HYPERLINK(1)"}]
    created = await client.post(
        API, json={"message": "big", "recipients": recipients}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    failed = numbers[1:]  # more than two export pages
    await fail_recipients(ctx, broadcast_id, failed)
    response = await browser.get(f"/broadcasts/{broadcast_id}/failed.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["phone"] for r in rows] == failed
    assert {r["error_code"] for r in rows} == {"NOT_ON_WHATSAPP"}
    assert {r["status"] for r in rows} == {"failed"}
    assert rows[-1]["name"] == "'=HYPERLINK(1)"
    missing = await browser.get("/broadcasts/999999/failed.csv")
    assert missing.status_code == 404


async def test_cancel_from_the_page_and_a_finished_broadcast_says_so(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    csrf: str,
) -> None:
    await unpaced(ctx, tenant.session_id)
    created = await client.post(
        API, json={"message": "soon over", "recipients": il_numbers(2)}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert "Cancel broadcast" in page.text
    await drain(ctx, clock)
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert "Cancel broadcast" not in page.text
    response = await browser.post(f"/broadcasts/{broadcast_id}/cancel", data={"csrf_token": csrf})
    assert response.headers["location"] == f"/broadcasts/{broadcast_id}?notice=already_finished"
    shown = await browser.get(response.headers["location"])
    assert "The broadcast had already finished; nothing was cancelled." in shown.text
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "completed"


async def test_resume_a_paused_broadcast_from_its_page(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    csrf: str,
) -> None:
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(3)
    await scenario(client, tenant, fail_numbers={numbers[1]: "ACCOUNT_RESTRICTED"})
    created = await client.post(
        API, json={"message": "held", "recipients": numbers}, headers=tenant.headers
    )
    broadcast_id = created.json()["broadcast_id"]
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert "Resume sending" not in page.text
    await drain(ctx, clock)
    page = await browser.get(f"/broadcasts/{broadcast_id}")
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "paused"
    assert "Resume sending" in page.text
    forged = await browser.post(f"/broadcasts/{broadcast_id}/resume")
    assert forged.status_code == 403
    await scenario(client, tenant, fail_numbers={})
    response = await browser.post(
        f"/broadcasts/{broadcast_id}/resume", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert response.headers["location"] == f"/broadcasts/{broadcast_id}?notice=resumed"
    shown = await browser.get(response.headers["location"])
    assert "The broadcast was resumed" in shown.text
    assert "Resume sending" not in shown.text
    await drain(ctx, clock)
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 3)
    again = await browser.post(
        f"/broadcasts/{broadcast_id}/resume", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert again.headers["location"] == (
        f"/broadcasts/{broadcast_id}?notice=finished_before_resume"
    )
    shown = await browser.get(again.headers["location"])
    assert "there is nothing to resume" in shown.text


# --- overview and metrics --------------------------------------------------------


async def test_metrics_count_the_last_five_minutes_and_every_minute_of_the_hour(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(3)
    await scenario(client, tenant, fail_numbers={numbers[1]: "NOT_ON_WHATSAPP"})
    await client.post(API, json={"message": "a", "recipients": numbers}, headers=tenant.headers)
    await drain(ctx, clock)
    sent_minute = clock.now().replace(second=0, microsecond=0)
    await client.post(
        API, json={"message": "b", "recipients": il_numbers(4, 10)}, headers=tenant.headers
    )
    other = await make_tenant(ctx, name="Other")
    await client.post(
        API, json={"message": "c", "recipients": il_numbers(5, 20)}, headers=other.headers
    )
    tenant_ctx = await tenant_context(ctx, tenant)
    metrics = await metrics_source.tenant_metrics(ctx, tenant_ctx)
    assert (
        metrics.pending_count,
        metrics.sent_last_5m,
        metrics.failed_last_5m,
        metrics.active_broadcasts,
    ) == (4, 2, 1, 1)
    series = await metrics_source.sends_per_minute(ctx, tenant_ctx)
    assert len(series) == 60
    assert series[-1].minute == clock.now().replace(second=0, microsecond=0)
    assert {(m.minute, m.sent, m.failed) for m in series if m.sent or m.failed} == {
        (sent_minute, 2, 1)
    }
    clock.advance(5 * 60 + 1)
    later = await metrics_source.tenant_metrics(ctx, tenant_ctx)
    assert (later.sent_last_5m, later.failed_last_5m, later.pending_count) == (0, 0, 4)
    clock.advance(3600)
    assert not any(
        m.sent or m.failed for m in await metrics_source.sends_per_minute(ctx, tenant_ctx)
    )


async def tenant_context(ctx: AppContext, tenant: TenantFixture) -> TenantContext:
    async with ctx.database.transaction() as session:
        found = await authenticate(session, tenant.api_key, ctx.clock.now())
    assert found is not None
    return found


async def test_overview_shows_tiles_chart_and_broadcasts_with_a_status_filter(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    csrf: str,
) -> None:
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(3)
    await scenario(client, tenant, fail_numbers={numbers[1]: "NOT_ON_WHATSAPP"})
    await client.post(API, json={"message": "done", "recipients": numbers}, headers=tenant.headers)
    await drain(ctx, clock)
    await client.post(
        API, json={"message": "waiting", "recipients": il_numbers(2, 50)}, headers=tenant.headers
    )
    # The tiles are the API's metrics, cached 10 s: signing in already rendered them.
    clock.advance(ctx.settings.metrics_cache_s + 1)
    page = await browser.get("/")
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = text_of(page)
    for metric, value in [
        ("pending", "2"),
        ("sent_last_5m", "2"),
        ("failed_last_5m", "1"),
        ("active_broadcasts", "1"),
    ]:
        assert re.search(
            rf'data-metric="{metric}">\s*<span class="tile-label">[^<]*</span>\s*'
            rf'<span class="tile-value">{value}</span>',
            page.text,
        ), metric
    assert 'data-sent-total="2" data-failed-total="1"' in page.text
    assert "2 sent and 1 failed in the last hour" in page.text
    assert 'data-status="partial"' in page.text
    assert 'data-status="queued"' in page.text
    assert "WhatsApp connected" in text
    only_partial = await browser.get("/?status=partial")
    assert only_partial.text.count("data-broadcast-id=") == 1
    assert "done" in only_partial.text
    assert "waiting" not in only_partial.text
    live = await browser.get("/", headers={"X-Live-Refresh": "1"})
    assert live.status_code == 200
    assert "<html" not in live.text
    assert set(re.findall(r'id="([^"]+)" [^>]*data-live', live.text)) == {
        "connection-state",
        "connection-banner",
        "metrics",
        "broadcast-list",
    }


async def test_hebrew_is_right_to_left_and_the_switch_stays_on_this_site(
    browser: httpx.AsyncClient, csrf: str
) -> None:
    switched = await browser.get("/language/he?next=/broadcasts/new")
    assert switched.headers["location"] == "/broadcasts/new"
    page = await browser.get("/broadcasts/new")
    assert '<html lang="he" dir="rtl">' in page.text
    assert "תפוצה חדשה" in page.text
    away = await browser.get("/language/en?next=https://evil.example/")
    assert away.headers["location"] == "/"
    assert '<html lang="en" dir="ltr">' in (await browser.get("/")).text


async def test_dashboard_routes_stay_out_of_the_api_contract(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    # The API's paths and the machine probes; no page of the dashboard.
    assert all(path.startswith("/api/") or path in {"/healthz", "/readyz"} for path in paths)
    assert not any(path in paths for path in ("/", "/sign-in", "/broadcasts/new"))
    css = await client.get("/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    versioned = re.search(
        r'href="(/static/dashboard\.css\?v=[0-9a-f]+)"', (await client.get("/sign-in")).text
    )
    assert versioned is not None
    cached = await client.get(versioned.group(1))
    assert "immutable" in cached.headers["cache-control"]
    assert (await client.get("/static/settings.py")).status_code == 404


async def test_an_unexpected_failure_is_a_page_that_reveals_nothing(
    browser: httpx.AsyncClient, csrf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(pages, "overview", broken)
    page = await browser.get("/")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "The server failed to show this page." in page.text
    assert "secret internals" not in page.text
