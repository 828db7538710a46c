"""The Sessions page in a real browser (Debian's Chromium via Playwright) against the server.

A Cloud API session is added through the form, as a person would, with its Graph
API address at a port where nothing listens: the page shows it not connected
(or unknown), which is all a test without Meta can expect. Pages are saved as
screenshots under tests/e2e/artifacts/, in English and in Hebrew, wide and narrow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.e2e.conftest import Server

ARTIFACTS = Path(__file__).parent / "artifacts"
STATE_TIMEOUT_MS = 30_000
PHONE: ViewportSize = {"width": 390, "height": 844}
TOKEN = "EAAG-browser-test-access-token-3141"
APP_SECRET = "browser-test-app-secret-2718"
VERIFY = "browser-test-verify-token-1618"

pytestmark = pytest.mark.slow
expect.set_options(timeout=STATE_TIMEOUT_MS)


@pytest.fixture
def page(chromium: Browser, server: Server) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    context.set_default_timeout(STATE_TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fits_the_width(page: Page, width: int) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"the page scrolls sideways at {width}px ({wide}px wide)"


def fill_cloud_api_form(page: Page, phone_number_id: str) -> None:
    page.get_by_label("Phone number ID").fill(phone_number_id)
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_label("App secret").fill(APP_SECRET)
    page.get_by_label("Verify token").fill(VERIFY)
    page.get_by_label("Graph base URL").fill("http://127.0.0.1:9")


def test_add_a_cloud_api_session_and_see_it_listed(page: Page, server: Server) -> None:
    page.goto(server.base_url + "/sessions")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fsessions$"))
    page.get_by_label("API key").fill(server.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server.base_url + "/sessions")
    expect(page.get_by_role("heading", name="WhatsApp sessions")).to_be_visible()
    expect(page.get_by_role("link", name="Sessions")).to_have_attribute("aria-current", "page")
    default_row = page.locator(f"tr[data-session-id='{server.session_id}']")
    expect(default_row.locator("[data-default]")).to_have_text("default")
    expect(default_row.locator("[data-state]")).to_have_attribute("data-state", "connected")
    screenshot(page, "sessions")

    # The provider chooser leads to the Cloud API's form, built from its config model.
    page.get_by_role("link", name="Add a Meta WhatsApp Cloud API session").click()
    expect(page.get_by_role("heading", name="New Meta WhatsApp Cloud API session")).to_be_visible()
    expect(page.get_by_label("API version")).to_have_value("v23.0")
    expect(page.get_by_label("Access token")).to_have_attribute("type", "password")
    fill_cloud_api_form(page, "12-34")
    page.get_by_label("Session id").fill("shop_cloud")
    with page.expect_response(lambda r: r.url.endswith("/sessions")) as answer:
        page.get_by_role("button", name="Add session").click()
    assert answer.value.status == 422
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The session was not saved: correct the fields below.")
    expect(alert).to_contain_text("Phone number ID: String should match pattern")
    expect(page.get_by_label("Phone number ID")).to_have_value("12-34")
    expect(page.get_by_label("Phone number ID")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Access token")).to_have_value("")
    expect(page.get_by_label("Session id")).to_have_value("shop_cloud")
    for secret in (TOKEN, APP_SECRET, VERIFY):
        assert secret not in page.content()
    screenshot(page, "session_form_error")

    fill_cloud_api_form(page, "100000000000999")
    page.get_by_role("button", name="Add session").click()
    expect(page).to_have_url(server.base_url + "/sessions?notice=created")
    expect(page.get_by_role("status").filter(has_text="added")).to_have_text(
        "The session was added."
    )
    row = page.locator("tr[data-session-id='shop_cloud']")
    expect(row.locator("[data-cell=provider]")).to_have_text("Meta WhatsApp Cloud API")
    # Nothing listens at 127.0.0.1:9, so the status check cannot say it is connected.
    expect(row.locator("[data-state]")).to_have_attribute(
        "data-state", re.compile(r"^(disconnected|unknown)$")
    )
    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        stored = api.get(
            "/api/whatsapp/sessions/shop_cloud",
            headers={"Authorization": f"Bearer {server.api_key}"},
        ).json()
    assert stored["config"]["access_token"] == "…3141"
    webhook_url = stored["webhook_url"]
    assert webhook_url.endswith("/api/whatsapp/webhooks/cloud_api")
    expect(row.locator(".copy-text")).to_have_text(webhook_url)
    expect(row.locator("[data-webhook-warning]")).to_be_visible()
    expect(page.locator(".warn-box[data-webhook-warning]")).to_contain_text(
        "WABROADCAST_PUBLIC_URL is not set"
    )
    copy = row.locator("button.copy-button")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == webhook_url
    for secret in (TOKEN, APP_SECRET, VERIFY):
        assert secret not in page.content()
    screenshot(page, "sessions_added")

    # The edit page: secrets only as their masked tail.
    row.get_by_role("link", name="Edit session shop_cloud").click()
    expect(page.get_by_role("heading", name="Session shop_cloud")).to_be_visible()
    expect(page.get_by_label("Phone number ID")).to_have_value("100000000000999")
    expect(page.get_by_label("Access token")).to_have_value("")
    expect(page.get_by_text("Stored: \u2066…3141\u2069; leave empty to keep it.")).to_be_visible()

    # Hebrew: right to left, wide and on a phone.
    page.get_by_role("link", name="עברית").click()
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", name="חיבור shop_cloud")).to_be_visible()
    expect(page.get_by_text("שמור: \u2066…3141\u2069; השאירו ריק כדי לשמור עליו.")).to_be_visible()
    screenshot(page, "session_edit_he")
    page.get_by_role("link", name="כל החיבורים").click()
    expect(page.get_by_role("heading", name="חיבורי WhatsApp")).to_be_visible()
    expect(page.locator("tr[data-session-id='shop_cloud'] .copy-text")).to_have_text(webhook_url)
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    screenshot(page, "sessions_he")
    page.set_viewport_size(PHONE)
    fits_the_width(page, PHONE["width"])
    screenshot(page, "sessions_he_phone")
    page.goto(server.base_url + "/sessions/shop_cloud/edit")
    fits_the_width(page, PHONE["width"])
    screenshot(page, "session_edit_he_phone")
    page.get_by_role("link", name="English").click()
    expect(html).to_have_attribute("dir", "ltr")
    page.goto(server.base_url + "/sessions")
    fits_the_width(page, PHONE["width"])
    screenshot(page, "sessions_phone")
