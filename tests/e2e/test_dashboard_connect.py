"""Connecting a phone by QR code in a real browser (Debian's Chromium via Playwright).

The server is the real ``wabroadcast serve``; the gateway is the real gateway code
with a fake WhatsApp behind it (gateway/test/fake-socket-server.js), which the test
makes show a QR code, replace it, then open the connection. The Connect page must
follow each step by itself, without a reload. Screenshots, in English and in
Hebrew, go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_dashboard_sessions import (
    PHONE,
    STATE_TIMEOUT_MS,
    fits_the_width,
    screenshot,
)
from tests.integration.test_dashboard_connect import QR_TEXT, USER, FakeGateway, fake_gateway

pytestmark = pytest.mark.slow
expect.set_options(timeout=STATE_TIMEOUT_MS)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[FakeGateway]:
    with fake_gateway(tmp_path) as running:
        yield running


@pytest.fixture
def page(chromium: Browser, server: Server, gateway: FakeGateway) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(STATE_TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def qr_source(page: Page) -> str:
    source = page.locator("img[data-qr]").get_attribute("src")
    assert source is not None
    return source


def test_connect_a_phone_by_qr_code_without_reloading(
    page: Page, server: Server, gateway: FakeGateway
) -> None:
    page.goto(server.base_url + "/sessions")
    page.get_by_label("API key").fill(server.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server.base_url + "/sessions")
    # The simulator's session is connected in its own console: no Connect button.
    default_row = page.locator(f"tr[data-session-id='{server.session_id}']")
    expect(default_row.locator("button[data-connect]")).to_have_count(0)

    # A Baileys session through the form, pointing at the gateway.
    page.get_by_role("link", name="Add a Baileys (QR link, our gateway) session").click()
    page.get_by_label("Base URL").fill(gateway.base_url)
    page.get_by_label("Token").fill(gateway.token)
    page.get_by_label("Session id").fill("phone")
    page.get_by_role("button", name="Add session").click()
    expect(page).to_have_url(server.base_url + "/sessions?notice=created")
    row = page.locator("tr[data-session-id='phone']")
    expect(row.get_by_role("button", name=re.compile("^Connect session phone"))).to_be_visible()
    screenshot(page, "sessions_connect")
    row.get_by_role("button", name="Connect session phone: link a phone by QR code").click()

    expect(page).to_have_url(server.base_url + "/sessions/phone/connect")
    expect(page.get_by_role("heading", name="Connect session phone")).to_be_visible()
    link = page.locator("#link-state")
    expect(link).to_have_attribute("data-link-state", "connecting")
    expect(link).to_contain_text("Connecting to WhatsApp…")
    # Anything that reloads the page would lose this.
    page.evaluate("window.notReloaded = true")

    gateway.emit("phone", {"qr": QR_TEXT})
    qr = page.locator("img[data-qr]")
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(qr).to_have_attribute("alt", "QR code to link a phone to session phone")
    expect(link).to_contain_text("Settings → Linked devices → Link a device.")
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("document.querySelector('img[data-qr]').naturalWidth") > 100
    expect(page.locator("#live-announcer")).to_have_text("State: waiting for the scan")
    screenshot(page, "connect_qr")

    # Hebrew, right to left, wide and on a phone; the QR code stays.
    page.get_by_role("link", name="עברית").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", name="קישור טלפון לחיבור phone")).to_be_visible()
    expect(page.locator("img[data-qr]")).to_be_visible()
    expect(link).to_contain_text("הגדרות ← מכשירים מקושרים ← קישור מכשיר.")
    screenshot(page, "connect_qr_he")
    page.set_viewport_size(PHONE)
    fits_the_width(page, PHONE["width"])
    screenshot(page, "connect_qr_he_phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    page.evaluate("window.notReloaded = true")

    # WhatsApp replaces the code: the page shows the new one by itself.
    first = qr_source(page)
    gateway.emit("phone", {"qr": QR_TEXT.replace("fake", "next")})
    expect(page.locator("img[data-qr]")).not_to_have_attribute("src", first)
    assert page.evaluate("window.notReloaded") is True

    # The phone scanned it: the page flips to connected, still without a reload.
    gateway.emit("phone", {"connection": "open"}, user=USER)
    expect(link.get_by_text("Connected as \u2066+972 50-123-4567\u2069.")).to_be_visible()
    expect(link).to_have_attribute("data-link-state", "connected")
    expect(page.locator("img[data-qr]")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#live-announcer")).to_have_text(
        "Connected as \u2066+972 50-123-4567\u2069."
    )
    expect(link.get_by_role("link", name="Back to sessions")).to_be_visible()
    screenshot(page, "connect_connected")
    page.get_by_role("link", name="עברית").click()
    expect(link.get_by_text("מחובר בתור \u2066+972 50-123-4567\u2069.")).to_be_visible()
    screenshot(page, "connect_connected_he")
    page.get_by_role("link", name="English").click()

    # Log out, confirmed by a tick like deleting: WhatsApp forgets the device.
    page.get_by_label("Yes, log out session phone").check()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(server.base_url + "/sessions/phone/connect?notice=logged_out")
    expect(page.get_by_role("status").filter(has_text="logged out")).to_have_text(
        "The phone was logged out of session phone."
    )
    expect(link).to_have_attribute("data-link-state", "logged_out")
    expect(link.get_by_role("button", name="Connect")).to_be_visible()
    assert gateway.state("phone")["state"] == "logged_out"
    assert gateway.token not in page.content()
