"""The dashboard's Opt-outs and Webhooks pages over HTTP on both databases.

Every form is checked by what it changed (the API's view of the list and the
subscriptions), and every refusal by the sentence shown next to the form. A
webhook's deliveries come from a real one: a broadcast queued with a subscription
to ``broadcast.queued``, delivered by the deliverer to a local receiver.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.test_dashboard import sign_in, text_of
from tests.support.dispatch import create
from tests.support.rows import il_numbers
from tests.support.tenants import START, TenantFixture, make_tenant
from tests.support.webhook_receiver import Receiver, running_receiver
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.deliverer import WebhookDeliverer
from wabroadcast.db.models import WebhookSubscription
from wabroadcast.web.webhook_routes import NEW_SECRET_COOKIE

OPT_OUTS_API = "/api/whatsapp/opt-outs"
STOP_WORDS_API = "/api/whatsapp/stop-words"
SUBSCRIPTIONS_API = "/api/whatsapp/webhook-subscriptions"


@pytest.fixture
async def browser(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like a browser of its own."""
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def csrf(browser: httpx.AsyncClient, tenant: TenantFixture) -> str:
    return await sign_in(browser, tenant)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def deliverer(ctx: AppContext) -> AsyncIterator[WebhookDeliverer]:
    worker = WebhookDeliverer(ctx, "deliverer-1")
    yield worker
    await worker.aclose()


async def listed(client: httpx.AsyncClient, tenant: TenantFixture) -> list[dict[str, Any]]:
    """The tenant's opt-outs as the API lists them, newest first."""
    response = await client.get(OPT_OUTS_API, headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def subscriptions(client: httpx.AsyncClient, tenant: TenantFixture) -> list[dict[str, Any]]:
    response = await client.get(SUBSCRIPTIONS_API, headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def results(page: httpx.Response) -> dict[str, int]:
    """The counts of the result box after adding or importing numbers."""
    found = re.findall(r'<dd data-result="([a-z]+)">([\d,]+)</dd>', page.text)
    assert found, page.text[:3000]
    return {name: int(value.replace(",", "")) for name, value in found}


def invalid_inputs(page: httpx.Response) -> list[tuple[str, str]]:
    found = re.findall(
        r'<li data-invalid-input="([^"]*)">.*?data-reason="([a-z_]+)"', page.text, re.S
    )
    return [(html.unescape(typed), reason) for typed, reason in found]


def problem(page: httpx.Response, form: str) -> str:
    found = re.search(
        rf'<div class="error-box"[^>]*data-problem="{form}".*?</div>', page.text, re.S
    )
    assert found is not None, page.text[:3000]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


def rows(page: httpx.Response) -> list[str]:
    """The phones of the list's rows, in order (E.164, as each row's data-phone)."""
    return re.findall(r'<tr data-phone="([^"]+)">', page.text)


def row_text(page: httpx.Response, phone: str) -> str:
    found = re.search(rf'<tr data-phone="{re.escape(phone)}">.*?</tr>', page.text, re.S)
    assert found is not None, phone
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


async def post(
    browser: httpx.AsyncClient, path: str, data: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    return await browser.post(path, data=data, **kwargs)


# --- opt-outs ---------------------------------------------------------------------


async def test_typed_numbers_are_added_and_invalid_lines_are_named(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    queued, other = il_numbers(2)
    await create(client, tenant, [queued, other], "still queued")
    typed = f"050-234-5678, {queued}\nabc\n0502345678; +1 555\n"
    posted = await post(
        browser, "/opt-outs", {"csrf_token": csrf, "phones": typed, "reason": "asked by phone"}
    )
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"].startswith("/opt-outs?added=2&already=0&invalid=2&skipped=1")

    page = await browser.get(posted.headers["location"])
    assert page.status_code == 200
    assert results(page) == {"added": 2, "already": 0, "invalid": 2, "skipped": 1}
    assert sorted(invalid_inputs(page)) == [("+1 555", "too_short"), ("abc", "invalid_format")]
    assert "not a phone number" in text_of(page)
    api = await listed(client, tenant)
    assert {item["phone"] for item in api} == {"+972502345678", queued}
    assert {(item["source"], item["reason"]) for item in api} == {("api", "asked by phone")}
    assert rows(page) == [item["phone"] for item in api]  # newest first, as the API
    shown = row_text(page, "+972502345678")
    assert "+972 50-234-5678" in shown
    assert "asked by phone" in shown
    assert "Added here or by the API" in shown

    again = await post(browser, "/opt-outs", {"csrf_token": csrf, "phones": "+972502345678"})
    assert results(await browser.get(again.headers["location"])) == {
        "added": 0,
        "already": 1,
        "invalid": 0,
        "skipped": 0,
    }
    assert len(await listed(client, tenant)) == 2


async def test_an_empty_form_or_a_missing_token_changes_nothing(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    empty = await post(browser, "/opt-outs", {"csrf_token": csrf, "phones": " ,\n "})
    assert empty.status_code == 400
    assert problem(empty, "add") == "Type or paste at least one phone number."
    too_long = await post(browser, "/opt-outs", {"csrf_token": csrf, "phones": "5" * 70})
    assert too_long.status_code == 422
    assert problem(too_long, "add").startswith("This cannot be a phone number")
    forged = await post(browser, "/opt-outs", {"phones": "0502345678"})
    assert forged.status_code == 403
    assert await listed(client, tenant) == []


async def test_the_list_is_filtered_by_any_spelling_and_paged(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    numbers = il_numbers(55)
    response = await client.post(OPT_OUTS_API, json={"phones": numbers}, headers=tenant.headers)
    assert response.status_code == 200, response.text

    first = await browser.get("/opt-outs")
    assert rows(first) == list(reversed(numbers))[:50]
    more = re.search(r'href="([^"]*cursor=[^"]*)" rel="next"', first.text)
    assert more is not None
    second = await browser.get(html.unescape(more.group(1)))
    assert rows(second) == list(reversed(numbers))[50:]

    local = "0" + numbers[7].removeprefix("+972")
    spelled = f"{local[:3]}-{local[3:6]} {local[6:]}"
    found = await browser.get("/opt-outs", params={"phone": spelled})
    assert found.status_code == 200
    assert rows(found) == [numbers[7]]
    missing = await browser.get("/opt-outs", params={"phone": "0549999999"})
    assert rows(missing) == []
    assert "This number is not on the opt-out list." in text_of(missing)
    nonsense = await browser.get("/opt-outs", params={"phone": "12"})
    assert nonsense.status_code == 400
    assert problem(nonsense, "filter").startswith("That is not a phone number to look for")


async def test_removing_a_number_needs_the_tick(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    phone = il_numbers(1)[0]
    await post(browser, "/opt-outs", {"csrf_token": csrf, "phones": phone})

    unticked = await post(browser, "/opt-outs/remove", {"csrf_token": csrf, "phone": phone})
    assert unticked.status_code == 400
    assert "to confirm, then remove again" in problem(unticked, "remove")
    assert [item["phone"] for item in await listed(client, tenant)] == [phone]

    form = {"csrf_token": csrf, "phone": phone, "confirm": "yes"}
    removed = await post(browser, "/opt-outs/remove", form)
    assert (removed.status_code, removed.headers["location"]) == (303, "/opt-outs?notice=removed")
    assert await listed(client, tenant) == []
    page = await browser.get(removed.headers["location"])
    assert "The number was taken off the opt-out list" in text_of(page)
    assert rows(page) == []
    twice = await post(browser, "/opt-outs/remove", form)
    assert twice.headers["location"] == "/opt-outs?notice=not_listed"
    assert (await browser.get("/opt-outs/remove")).headers["location"] == "/opt-outs"


async def test_a_csv_file_with_a_header_is_imported_by_the_apis_importer(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    first, second = il_numbers(2)
    local = "0" + second.removeprefix("+972")
    data = f"name,Phone\nDana,{first}\nBad,abc\nEli,{local}\nDana again,{first}\n".encode()
    posted = await browser.post(
        "/opt-outs/import",
        data={"csrf_token": csrf, "reason": "old list"},
        files={"csv_file": ("list.csv", data, "text/csv")},
    )
    assert posted.status_code == 303, posted.text
    page = await browser.get(posted.headers["location"])
    assert results(page) == {"added": 2, "already": 0, "invalid": 1, "skipped": 0}
    assert invalid_inputs(page) == [("abc", "invalid_format")]
    api = await listed(client, tenant)
    assert {(i["phone"], i["source"], i["reason"]) for i in api} == {
        (first, "import", "old list"),
        (second, "import", "old list"),
    }
    assert "CSV import" in row_text(page, second)


async def test_an_import_that_cannot_be_read_is_a_sentence(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    def upload(data: bytes) -> dict[str, Any]:
        return {"files": {"csv_file": ("list.csv", data, "text/csv")}}

    token = {"csrf_token": csrf}
    no_phone = await post(browser, "/opt-outs/import", token, **upload(b"name,city\nDana,Haifa\n"))
    assert no_phone.status_code == 422
    assert problem(no_phone, "import").startswith("No phone column found in the CSV file")
    binary = await post(browser, "/opt-outs/import", token, **upload(b"\xff\xfe\x00\xd8\x00"))
    assert problem(binary, "import") == "The CSV file must be UTF-8 or UTF-16 text."
    header_only = await post(browser, "/opt-outs/import", token, **upload(b"phone\n"))
    assert header_only.status_code == 422
    assert problem(header_only, "import") == "The CSV file has no rows."
    nul = {**token, "reason": "a\x00b"}
    unstorable = await post(browser, "/opt-outs/import", nul, **upload(b"phone\n0502345678\n"))
    assert unstorable.status_code == 422
    assert problem(unstorable, "import").startswith("The reason must be at most 500 characters")
    no_file = await post(browser, "/opt-outs/import", token)
    assert problem(no_file, "import") == "Choose a CSV file to import."
    assert await listed(client, tenant) == []


async def test_stop_words_are_shown_saved_and_restored(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    page = await browser.get("/opt-outs")
    assert "data-stop-words-default" in page.text
    assert "STOP\nUNSUBSCRIBE\nהסר" in html.unescape(page.text)

    saved = await post(
        browser, "/opt-outs/stop-words", {"csrf_token": csrf, "stop_words": "Stop\r\n\r\nבטל\n"}
    )
    assert saved.headers["location"] == "/opt-outs?notice=stop_words_saved"
    api = (await client.get(STOP_WORDS_API, headers=tenant.headers)).json()
    assert api == {"stop_words": ["Stop", "בטל"], "default": False}
    shown = await browser.get(saved.headers["location"])
    assert "The stop words were saved." in text_of(shown)
    assert "data-stop-words-default" not in shown.text

    refused = await post(
        browser, "/opt-outs/stop-words", {"csrf_token": csrf, "stop_words": "ok\n!!!"}
    )
    assert refused.status_code == 422
    assert problem(refused, "stop_words") == "“!!!” has no letters or digits to match."
    assert "ok\n!!!" in html.unescape(refused.text)

    restored = await post(
        browser, "/opt-outs/stop-words", {"csrf_token": csrf, "stop_words": "", "defaults": "yes"}
    )
    assert restored.status_code == 303
    api = (await client.get(STOP_WORDS_API, headers=tenant.headers)).json()
    assert api["default"] is True


# --- webhooks ---------------------------------------------------------------------


async def stored_secret(ctx: AppContext, subscription_id: int) -> str:
    async with ctx.database.transaction() as db:
        row = await db.get(WebhookSubscription, subscription_id)
        assert row is not None
        return ctx.secrets.decrypt(row.secret)["secret"]


def shown_secret(page: httpx.Response) -> str | None:
    found = re.search(r'<code id="new-secret"[^>]*>(.*?)</code>', page.text, re.S)
    return None if found is None else html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


async def test_a_new_subscriptions_secret_is_shown_once(
    browser: httpx.AsyncClient,
    csrf: str,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
) -> None:
    form = {
        "csrf_token": csrf,
        "url": " https://crm.example.com/hooks/wab ",
        "events": ["recipient.failed", "broadcast.queued"],
    }
    posted = await post(browser, "/webhooks", form)
    assert posted.status_code == 303, posted.text
    [made] = await subscriptions(client, tenant)
    assert posted.headers["location"] == f"/webhooks/{made['id']}"
    assert (made["url"], made["events"]) == (
        "https://crm.example.com/hooks/wab",
        ["broadcast.queued", "recipient.failed"],
    )
    secret = await stored_secret(ctx, made["id"])
    assert secret not in posted.headers["location"]
    assert secret not in posted.headers["set-cookie"]

    first = await browser.get(posted.headers["location"])
    assert first.status_code == 200
    assert shown_secret(first) == secret
    assert "Copy it now: it is not shown again." in text_of(first)
    assert NEW_SECRET_COOKIE not in browser.cookies
    second = await browser.get(posted.headers["location"])
    assert shown_secret(second) is None
    assert secret not in second.text
    listing = await browser.get("/webhooks")
    assert secret not in listing.text
    assert f'<tr data-subscription-id="{made["id"]}">' in listing.text
    assert "https://crm.example.com/hooks/wab" in listing.text

    chosen = {"csrf_token": csrf, "url": "http://127.0.0.1:9/x", "events": "broadcast.paused"}
    own = await post(browser, "/webhooks", {**chosen, "secret": "my-own-secret-of-16+"})
    assert shown_secret(await browser.get(own.headers["location"])) == "my-own-secret-of-16+"


async def test_a_refused_subscription_says_why_and_keeps_the_form(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    form = {"csrf_token": csrf, "url": "ftp://crm.example.com/", "secret": "short"}
    refused = await post(browser, "/webhooks", form)
    assert refused.status_code == 422
    box = re.search(r'<div class="error-box".*?</div>', refused.text, re.S)
    assert box is not None
    said = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box.group(0))).split())
    assert said == (
        "The subscription was not saved: "
        "The URL must be an http:// or https:// address with a host. "
        "Choose at least one event. "
        "A secret of your own must be 16 to 200 characters long."
    )
    assert 'value="ftp://crm.example.com/"' in refused.text
    assert "short" not in refused.text.split('id="hook-secret"', 1)[1].split(">", 1)[0]
    assert await subscriptions(client, tenant) == []


async def test_deleting_a_subscription_needs_the_tick(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    form = {"csrf_token": csrf, "url": "https://crm.example.com/h", "events": "broadcast.queued"}
    made = (await post(browser, "/webhooks", form)).headers["location"]

    unticked = await post(browser, f"{made}/delete", {"csrf_token": csrf})
    assert unticked.status_code == 400
    assert "Tick “Yes, delete subscription" in text_of(unticked)
    assert len(await subscriptions(client, tenant)) == 1

    deleted = await post(browser, f"{made}/delete", {"csrf_token": csrf, "confirm": "yes"})
    assert deleted.headers["location"] == "/webhooks?notice=deleted"
    assert await subscriptions(client, tenant) == []
    page = await browser.get(deleted.headers["location"])
    assert "The subscription was deleted." in text_of(page)
    gone = await browser.get(made)
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("text/html")


async def test_another_tenants_subscription_is_a_friendly_404(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, "Other")
    body = {"url": "https://crm.example.com/other", "events": ["broadcast.queued"]}
    made = await client.post(SUBSCRIPTIONS_API, json=body, headers=other.headers)
    page = await browser.get(f"/webhooks/{made.json()['id']}")
    assert page.status_code == 404
    assert "crm.example.com/other" not in page.text


def delivery_row(page: httpx.Response) -> str:
    found = re.search(r"<tr data-delivery-id=.*?</tr>", page.text, re.S)
    assert found is not None, page.text[:3000]
    return found.group(0)


async def test_deliveries_show_each_attempt_and_the_crms_answer(
    browser: httpx.AsyncClient,
    csrf: str,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    clock: FrozenClock,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
) -> None:
    form = {"csrf_token": csrf, "url": receiver.url, "events": "broadcast.queued"}
    page_url = (await post(browser, "/webhooks", form)).headers["location"]
    assert "Nothing was sent to this subscription yet." in text_of(await browser.get(page_url))
    receiver.answers = [500]
    broadcast_id = await create(client, tenant, il_numbers(1), "webhook page")

    assert await deliverer.deliver_due() == 1
    pending = delivery_row(await browser.get(page_url))
    assert 'data-status="pending"' in pending
    assert "HTTP 500" in pending
    assert f'datetime="{(START.replace(second=15)):%Y-%m-%dT%H:%M:%SZ}"' in pending

    clock.advance(15)
    assert await deliverer.deliver_due() == 1
    [event_id] = {r.event_id for r in receiver.received}
    page = await browser.get(page_url)
    row = delivery_row(page)
    assert f'data-event-id="{event_id}"' in row
    assert 'data-status="delivered"' in row
    assert '<code dir="ltr" data-cell="event">broadcast.queued</code>' in row
    assert f'<a href="/broadcasts/{broadcast_id}">#{broadcast_id}</a>' in row
    attempts = re.findall(r'<li data-attempt="(\d+)">(.*?)</li>', row, re.S)
    assert [number for number, _ in attempts] == ["1", "2"]
    assert "HTTP 500" in attempts[0][1]
    assert "HTTP 200" in attempts[1][1]
    assert "2 attempts" in row
    assert 'data-cell="next"></td>' in row  # delivered: no next attempt

    delivered = await browser.get(page_url, params={"status": "delivered"})
    assert f'data-event-id="{event_id}"' in delivered.text
    failed = await browser.get(page_url, params={"status": "failed"})
    assert "data-delivery-id" not in failed.text


async def test_the_pages_are_right_to_left_in_hebrew(
    browser: httpx.AsyncClient, csrf: str, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    await post(browser, "/opt-outs", {"csrf_token": csrf, "phones": "0502345678"})
    form = {"csrf_token": csrf, "url": "https://crm.example.com/h", "events": "broadcast.queued"}
    made = (await post(browser, "/webhooks", form)).headers["location"]
    assert (await browser.get("/language/he")).status_code == 303
    for path, heading, nav in [
        ("/opt-outs", "רשימת הסרה", "/opt-outs"),
        ("/webhooks", "מינויים", "/webhooks"),
        (made, "מינוי webhook", "/webhooks"),
    ]:
        page = await browser.get(path)
        assert page.status_code == 200, path
        assert '<html lang="he" dir="rtl">' in page.text
        assert heading in page.text, path
        assert f'<a href="{nav}" aria-current="page">' in page.text
    opt_outs = await browser.get("/opt-outs")
    assert "נוסף כאן או דרך ה־API" in row_text(opt_outs, "+972502345678")
    assert '<span dir="ltr" class="phone">+972 50-234-5678</span>' in opt_outs.text
