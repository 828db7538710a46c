"""The dashboard's Sessions pages over HTTP on both databases: list, add, edit, delete.

Secrets are write-only here as in the API: every page a test can reach after a
secret was typed is checked for it. The browser test
(tests/e2e/test_dashboard_sessions.py) drives the same pages through Chromium.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.test_dashboard import TOKEN_FIELD, field, sign_in, text_of
from tests.support.dispatch import scenario
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.api.app import create_app
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.providers.cloud_api import PLUGIN as CLOUD_API
from wabroadcast.sessions import service as session_service
from wabroadcast.sessions.schemas import SessionStatusOut
from wabroadcast.tenants.service import TenantContext

SESSIONS_API = "/api/whatsapp/sessions"
TOKEN = "EAAG-dashboard-access-token-7781"
APP_SECRET = "dashboard-app-secret-of-meta-4422"
VERIFY = "dashboard-verify-token-chosen-9090"
SECRETS = (TOKEN, APP_SECRET, VERIFY)
INPUT_NAMES = re.compile(r'<input[^>]* name="(config\.[a-z_]+)"')


@pytest.fixture
async def browser(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like a browser of its own."""
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def csrf(browser: httpx.AsyncClient, tenant: TenantFixture) -> str:
    return await sign_in(browser, tenant)


def cloud_form(csrf: str, **changes: str) -> dict[str, str]:
    """The add form of a Cloud API session as a person fills it in."""
    return {
        "csrf_token": csrf,
        "provider": "cloud_api",
        "config.phone_number_id": "100000000000777",
        "config.access_token": TOKEN,
        "config.app_secret": APP_SECRET,
        "config.verify_token": VERIFY,
        "config.api_version": "v23.0",
        "config.graph_base_url": "http://127.0.0.1:9",
        "session_id": "shop_cloud",
        "max_concurrency": "4",
        "rate_per_minute": "30",
        "jitter_ms": "100",
        **changes,
    }


def input_tag(page: httpx.Response, name: str) -> str:
    found = re.search(rf'<input[^>]* name="{re.escape(name)}"[^>]*>', page.text)
    assert found is not None, name
    return found.group(0)


def value_of(page: httpx.Response, name: str) -> str:
    found = re.search(r'value="([^"]*)"', input_tag(page, name))
    assert found is not None, name
    return html.unescape(found.group(1))


def row_of(page: httpx.Response, session_id: str) -> str:
    found = re.search(rf'<tr data-session-id="{re.escape(session_id)}".*?</tr>', page.text, re.S)
    assert found is not None, session_id
    cells = found.group(0).replace("<wbr>", "")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cells)).split())


def stored_hint(tail: str) -> str:
    """The hint under a stored secret's empty input; its tail isolated left to right."""
    return f"Stored: \u2066…{tail}\u2069; leave empty to keep it."


def problems(page: httpx.Response) -> str:
    """The error box's sentence and list, tags dropped (a label's link too)."""
    found = re.search(r'<div class="error-box".*?</div>', page.text, re.S)
    assert found is not None, page.text[:3000]
    lines = re.sub(r"</(p|li)>", "\n", found.group(0))
    return html.unescape(re.sub(r"<[^>]+>", "", lines))


def assert_no_secret(*pages: httpx.Response) -> None:
    for page in pages:
        for secret in SECRETS:
            assert secret not in page.text, (page.request.url, secret)


async def api_session(
    client: httpx.AsyncClient, tenant: TenantFixture, session_id: str
) -> dict[str, Any]:
    response = await client.get(f"{SESSIONS_API}/{session_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_secrets(ctx: AppContext, session_id: str) -> dict[str, str]:
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, session_id)
        assert row is not None
        return ctx.secrets.decrypt(row.secret_config or "")


async def add_cloud_by_api(
    client: httpx.AsyncClient, tenant: TenantFixture, session_id: str = "shop"
) -> None:
    config = {
        "phone_number_id": "100000000000888",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
        "graph_base_url": "http://127.0.0.1:9",
    }
    response = await client.post(
        SESSIONS_API,
        json={"session_id": session_id, "provider": "cloud_api", "config": config},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


# --- the list ----------------------------------------------------------------------


async def test_the_page_lists_the_default_simulator_session(
    browser: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    page = await browser.get("/sessions")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<a href="/sessions" aria-current="page">Sessions</a>' in page.text
    row = row_of(page, tenant.session_id)
    assert row.startswith(f"{tenant.session_id} default Simulator connected")
    assert "120 per minute, jitter up to 250 ms provider default" in row
    assert re.search(r'data-cell="max_concurrency">1<', page.text)
    assert "http://127.0.0.1:8000/api/whatsapp/webhooks/simulator" in row
    assert f'href="/sessions/{tenant.session_id}/edit"' in page.text
    # WABROADCAST_PUBLIC_URL is not set in tests: the page says providers may not reach it.
    assert "Providers may not reach the webhook address:" in page.text
    assert "WABROADCAST_PUBLIC_URL is not set" in page.text
    # The provider chooser: every plugin, with its summary.
    for kind in ("simulator", "cloud_api"):
        assert f'href="/sessions/new?provider={kind}"' in page.text
    assert "Meta&#39;s official API" in page.text
    assert 'href="/sessions"' in (await browser.get("/")).text


async def test_the_page_in_hebrew_and_a_disconnected_session(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    await scenario(client, tenant, connected=False)
    browser.cookies.set("wab_lang", "he")
    page = await browser.get("/sessions")
    assert '<html lang="he" dir="rtl">' in page.text
    assert "חיבורי WhatsApp" in page.text
    row = row_of(page, tenant.session_id)
    assert "ברירת מחדל" in row
    assert "לא מחובר" in row
    assert 'data-state="disconnected"' in page.text
    assert 'class="banner" role="alert"' in page.text
    assert "הוספת חיבור Meta WhatsApp Cloud API" in text_of(page)


async def test_status_checks_of_a_page_run_concurrently(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    csrf: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("second", "third", "fourth"):
        added = await client.post(
            SESSIONS_API, json={"session_id": name, "provider": "simulator"}, headers=tenant.headers
        )
        assert added.status_code == 201, added.text
    real = session_service.session_status
    in_flight = 0
    most = 0

    async def counted(
        ctx: AppContext, owner: TenantContext, session_id: str | None
    ) -> SessionStatusOut:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.05)
            return await real(ctx, owner, session_id)
        finally:
            in_flight -= 1

    monkeypatch.setattr(session_service, "session_status", counted)
    page = await browser.get("/sessions")
    assert page.status_code == 200
    assert page.text.count("data-session-id=") == 4
    assert most == 4


# --- adding ------------------------------------------------------------------------


async def test_the_add_form_is_built_from_the_provider_config_model(
    browser: httpx.AsyncClient, csrf: str
) -> None:
    page = await browser.get("/sessions/new?provider=cloud_api")
    assert page.status_code == 200
    assert INPUT_NAMES.findall(page.text) == [f"config.{name}" for name in CLOUD_API.form_fields]
    text = text_of(page)
    assert "New Meta WhatsApp Cloud API session" in text
    for label in ("Phone number ID", "Access token", "App secret", "API version", "Graph base URL"):
        assert f">{label}</span>" in page.text, label
    assert "digits only. It is not the phone number itself." in text
    assert value_of(page, "config.api_version") == "v23.0"
    assert value_of(page, "config.graph_base_url") == "https://graph.facebook.com"
    assert value_of(page, "config.phone_number_id") == ""
    for secret in ("access_token", "app_secret", "verify_token"):
        tag = input_tag(page, f"config.{secret}")
        assert 'type="password"' in tag
        assert 'autocomplete="off"' in tag
        assert 'value=""' in tag
    for name in ("session_id", "default", "max_concurrency", "rate_per_minute", "jitter_ms"):
        input_tag(page, name)
    assert "Empty: the provider&#39;s default, 3,600." in page.text

    chooser = await browser.get("/sessions/new")
    assert chooser.status_code == 200
    assert 'href="/sessions/new?provider=simulator"' in chooser.text
    unknown = await browser.get("/sessions/new?provider=carrier_pigeon")
    assert unknown.status_code == 404
    assert "There is no provider called “carrier_pigeon”" in unknown.text
    assert 'href="/sessions/new?provider=cloud_api"' in unknown.text


async def test_adding_a_cloud_api_session_stores_it_and_never_shows_its_secrets(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    created = await browser.post("/sessions", data=cloud_form(csrf))
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/sessions?notice=created"
    body = await api_session(client, tenant, "shop_cloud")
    assert body["provider"] == "cloud_api"
    assert body["default"] is False
    assert body["config"]["phone_number_id"] == "100000000000777"
    assert body["config"]["access_token"] == "…7781"
    assert body["config"]["graph_base_url"] == "http://127.0.0.1:9"
    assert (body["max_concurrency"], body["rate_per_minute"], body["jitter_ms"]) == (4, 30, 100)
    assert body["pace_is_default"] is False
    assert await stored_secrets(ctx, "shop_cloud") == {
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
    }

    listed = await browser.get(created.headers["location"])
    assert "The session was added." in listed.text
    row = row_of(listed, "shop_cloud")
    assert "Meta WhatsApp Cloud API" in row
    assert "30 per minute, jitter up to 100 ms" in row
    assert "provider default" not in row
    assert body["webhook_url"] in row
    assert body["webhook_url"].endswith("/api/whatsapp/webhooks/cloud_api")
    # Nothing answers at 127.0.0.1:9: the check fails, and the page says so.
    assert re.search(r"(not connected|unknown) .*status check failed", row), row
    edit = await browser.get("/sessions/shop_cloud/edit")
    assert edit.status_code == 200
    assert_no_secret(created, listed, edit)


async def test_a_bad_field_is_named_and_no_secret_is_echoed(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    bad = await browser.post(
        "/sessions", data=cloud_form(csrf, **{"config.phone_number_id": "12-34 x"})
    )
    assert bad.status_code == 422
    text = problems(bad)
    assert "The session was not saved: correct the fields below." in text
    assert "Phone number ID: String should match pattern" in text
    assert 'aria-invalid="true"' in input_tag(bad, "config.phone_number_id")
    assert value_of(bad, "config.phone_number_id") == "12-34 x"
    assert value_of(bad, "config.graph_base_url") == "http://127.0.0.1:9"
    assert value_of(bad, "session_id") == "shop_cloud"
    assert value_of(bad, "max_concurrency") == "4"
    for secret in ("access_token", "app_secret", "verify_token"):
        assert value_of(bad, f"config.{secret}") == ""
    assert '"error_code"' not in bad.text

    settings = await browser.post(
        "/sessions",
        data=cloud_form(
            csrf,
            max_concurrency="lots",
            jitter_ms="-5",
            **{"config.access_token": "has a space", "config.graph_base_url": "ftp://x"},
        ),
    )
    assert settings.status_code == 422
    text = problems(settings)
    assert "Max concurrency: Enter a whole number." in text
    assert "Jitter (ms): Input should be greater than or equal to 0" in text
    assert "Access token: String should match pattern" in text
    assert "Graph base URL: Value error, the Graph API URL must start with http://" in text
    assert "has a space" not in settings.text

    missing = await browser.post(
        "/sessions", data=cloud_form(csrf, **{"config.app_secret": "", "session_id": "a b"})
    )
    assert missing.status_code == 422
    text = problems(missing)
    assert "App secret: This field is required." in text
    assert "Session id: String should match pattern" in text

    browser.cookies.set("wab_lang", "he")
    hebrew = await browser.post("/sessions", data=cloud_form(csrf, max_concurrency="0"))
    assert hebrew.status_code == 422
    assert "החיבור לא נשמר: תקנו את השדות שלמטה." in text_of(hebrew)
    assert_no_secret(bad, settings, missing, hebrew)
    listed = await client.get(SESSIONS_API, headers=tenant.headers)
    assert [item["session_id"] for item in listed.json()["items"]] == [tenant.session_id]


async def test_a_taken_id_or_number_is_a_sentence_next_to_the_form(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    taken_id = await browser.post("/sessions", data=cloud_form(csrf, session_id=tenant.session_id))
    assert taken_id.status_code == 409
    assert (
        f"The session was not saved: a session with the id {tenant.session_id} already exists."
        in text_of(taken_id)
    )
    await add_cloud_by_api(client, await make_tenant(ctx, "Other"), "theirs")
    taken_number = await browser.post(
        "/sessions", data=cloud_form(csrf, **{"config.phone_number_id": "100000000000888"})
    )
    assert taken_number.status_code == 409
    assert (
        "another session already receives Meta WhatsApp Cloud API webhooks for this number"
        in text_of(taken_number)
    )
    assert "theirs" not in taken_number.text
    assert_no_secret(taken_id, taken_number)


async def test_a_simulator_session_needs_no_settings_and_can_become_the_default(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    form = await browser.get("/sessions/new?provider=simulator")
    assert "This provider needs no settings." in form.text
    created = await browser.post(
        "/sessions", data={"csrf_token": csrf, "provider": "simulator", "default": "on"}
    )
    assert created.status_code == 303, created.text
    items = (await client.get(SESSIONS_API, headers=tenant.headers)).json()["items"]
    new = next(item for item in items if item["session_id"] != tenant.session_id)
    assert new["session_id"].startswith(f"business_{tenant.tenant_id}_")
    assert new["default"] is True
    assert new["pace_is_default"] is True
    assert (await api_session(client, tenant, tenant.session_id))["default"] is False


# --- editing -----------------------------------------------------------------------


async def test_editing_with_empty_secrets_keeps_the_stored_ones(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    await add_cloud_by_api(client, tenant)
    edit = await browser.get("/sessions/shop/edit")
    assert edit.status_code == 200
    assert value_of(edit, "config.phone_number_id") == "100000000000888"
    assert value_of(edit, "config.graph_base_url") == "http://127.0.0.1:9"
    assert value_of(edit, "max_concurrency") == "16"
    assert value_of(edit, "rate_per_minute") == ""  # the provider's default pace
    for secret in ("access_token", "app_secret", "verify_token"):
        tag = input_tag(edit, f"config.{secret}")
        assert 'value=""' in tag
        assert " required" not in tag
    assert stored_hint("7781") in edit.text
    assert stored_hint("4422") in edit.text
    assert "Delete session" in edit.text
    assert_no_secret(edit)

    form = {
        "csrf_token": csrf,
        "config.phone_number_id": "100000000000888",
        "config.access_token": "",
        "config.app_secret": "",
        "config.verify_token": "",
        "config.api_version": "v24.0",
        "config.graph_base_url": "http://127.0.0.1:9",
        "max_concurrency": "3",
        "rate_per_minute": "",
        "jitter_ms": "",
        "default": "on",
    }
    saved = await browser.post("/sessions/shop", data=form)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "/sessions?notice=saved"
    assert await stored_secrets(ctx, "shop") == {
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
    }
    body = await api_session(client, tenant, "shop")
    assert (body["config"]["api_version"], body["default"], body["max_concurrency"]) == (
        "v24.0",
        True,
        3,
    )
    assert body["pace_is_default"] is True
    listed = await browser.get(saved.headers["location"])
    assert "The changes were saved." in listed.text
    assert "default" in row_of(listed, "shop")
    assert_no_secret(saved, listed)

    new_token = "EAAG-a-rotated-access-token-5150"
    rotated = await browser.post(
        "/sessions/shop",
        data={**form, "config.access_token": new_token, "config.graph_base_url": ""},
    )
    assert rotated.status_code == 303, rotated.text
    stored = await stored_secrets(ctx, "shop")
    assert (stored["access_token"], stored["app_secret"]) == (new_token, APP_SECRET)
    body = await api_session(client, tenant, "shop")
    # An emptied setting goes back to its default.
    assert body["config"]["graph_base_url"] == "https://graph.facebook.com"
    emptied = await browser.post("/sessions/shop", data={**form, "config.phone_number_id": ""})
    assert emptied.status_code == 422
    assert "Phone number ID: This field is required." in problems(emptied)
    refused = await browser.post("/sessions/shop", data={**form, "config.access_token": "x y"})
    assert refused.status_code == 422
    assert "Access token: String should match pattern" in problems(refused)
    assert 'aria-invalid="true"' in input_tag(refused, "config.access_token")
    assert stored_hint("5150") in refused.text
    assert "x y" not in refused.text
    # Switching the language after a refusal shows the form again, not a missing page.
    switch = re.search(r'href="(/language/he\?next=[^"]+)"', refused.text)
    assert switch is not None
    back = await browser.get(html.unescape(switch.group(1)), follow_redirects=True)
    assert (back.status_code, back.url.path) == (200, "/sessions/shop/edit")
    assert '<html lang="he" dir="rtl">' in back.text
    assert new_token not in (await browser.get("/sessions/shop/edit")).text


async def test_another_tenants_session_is_not_found(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, ctx: AppContext, csrf: str
) -> None:
    other = await make_tenant(ctx, "Other")
    edit = await browser.get(f"/sessions/{other.session_id}/edit")
    assert edit.status_code == 404
    assert "Not found" in edit.text
    changed = await browser.post(
        f"/sessions/{other.session_id}", data={"csrf_token": csrf, "max_concurrency": "9"}
    )
    assert changed.status_code == 404
    deleted = await browser.post(
        f"/sessions/{other.session_id}/delete", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert deleted.status_code == 404
    theirs = await api_session(client, other, other.session_id)
    assert theirs["max_concurrency"] == 1
    listed = await browser.get("/sessions")
    assert other.session_id not in listed.text


# --- deleting ----------------------------------------------------------------------


async def test_deleting_needs_a_confirmation_and_a_session_without_active_broadcasts(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    added = await client.post(
        SESSIONS_API, json={"session_id": "second", "provider": "simulator"}, headers=tenant.headers
    )
    assert added.status_code == 201, added.text
    posted = await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "hi", "recipients": ["+972502345678"], "session_id": "second"},
        headers=tenant.headers,
    )
    assert posted.status_code == 202, posted.text
    broadcast_id = posted.json()["broadcast_id"]

    unconfirmed = await browser.post("/sessions/second/delete", data={"csrf_token": csrf})
    assert unconfirmed.status_code == 400
    assert "Tick “Yes, delete session second” to confirm" in unconfirmed.text
    in_use = await browser.post(
        "/sessions/second/delete", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert in_use.status_code == 409
    assert 'data-error-code="SESSION_IN_USE"' in in_use.text
    assert (
        "The session has 1 active broadcast: cancel it or wait for it to finish "
        "before deleting it" in text_of(in_use)
    )
    browser.cookies.set("wab_lang", "he")
    hebrew = await browser.post(
        "/sessions/second/delete", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert "החיבור לא נמחק. יש בו תפוצה פעילה אחת" in text_of(hebrew)
    browser.cookies.set("wab_lang", "en")
    await api_session(client, tenant, "second")

    await client.post(f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers)
    deleted = await browser.post(
        "/sessions/second/delete", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/sessions?notice=deleted"
    listed = await browser.get(deleted.headers["location"])
    assert "The session was deleted." in listed.text
    assert 'data-session-id="second"' not in listed.text
    gone = await client.get(f"{SESSIONS_API}/second", headers=tenant.headers)
    assert gone.status_code == 404
    assert (await browser.get("/sessions/second/edit")).status_code == 404


async def test_the_last_session_deleted_leaves_a_page_to_add_one(
    browser: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    deleted = await browser.post(
        f"/sessions/{tenant.session_id}/delete", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert deleted.status_code == 303
    page = await browser.get("/sessions")
    assert page.status_code == 200
    assert "No sessions yet" in page.text
    assert 'id="connection-state"' not in page.text
    assert (await browser.get("/sessions/new?provider=simulator")).status_code == 200


# --- cross-site requests -------------------------------------------------------------


async def test_the_session_forms_need_the_csrf_token(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    csrf: str,
) -> None:
    await add_cloud_by_api(client, tenant)
    for token in (None, "guess"):
        form = cloud_form(token or "", session_id="forged")
        if token is None:
            del form["csrf_token"]
        forged_add = await browser.post("/sessions", data=form)
        assert forged_add.status_code == 403
        assert "did not come from this dashboard" in forged_add.text
        forged_edit = await browser.post(
            "/sessions/shop",
            data={"max_concurrency": "2", **({"csrf_token": token} if token else {})},
        )
        assert forged_edit.status_code == 403
        forged_delete = await browser.post(
            "/sessions/shop/delete",
            data={"confirm": "yes", **({"csrf_token": token} if token else {})},
        )
        assert forged_delete.status_code == 403
        assert_no_secret(forged_add, forged_edit, forged_delete)
    listed = (await client.get(SESSIONS_API, headers=tenant.headers)).json()["items"]
    assert [item["session_id"] for item in listed] == [tenant.session_id, "shop"]
    assert (await api_session(client, tenant, "shop"))["max_concurrency"] == 16
    # The forms the pages render carry the session's token, and go through with it.
    page = await browser.get("/sessions/shop/edit")
    assert field(TOKEN_FIELD, page.text) == csrf
    shown = {
        f"config.{name}": value_of(page, f"config.{name}")
        for name in ("phone_number_id", "api_version", "graph_base_url")
    }
    kept = await browser.post(
        "/sessions/shop", data={"csrf_token": csrf, **shown, "max_concurrency": "2"}
    )
    assert kept.status_code == 303, kept.text
    assert (await api_session(client, tenant, "shop"))["max_concurrency"] == 2
    assert (await stored_secrets(ctx, "shop"))["access_token"] == TOKEN
