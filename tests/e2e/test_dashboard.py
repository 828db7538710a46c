"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the server.

One server (with its embedded worker and simulated WhatsApp) serves the whole
module; each test gets a tenant of its own, so tests share nothing but the
process. Waits are for states the page reaches, never fixed sleeps. Pages are
saved as screenshots under tests/e2e/artifacts/.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect

from tests.e2e.conftest import Server, running_server
from tests.support.rows import il_numbers
from wabroadcast.clock import SystemClock
from wabroadcast.db.engine import Database
from wabroadcast.sessions.schemas import SessionSettings
from wabroadcast.sessions.service import update_session_settings
from wabroadcast.tenants.service import create_tenant

ARTIFACTS = Path(__file__).parent / "artifacts"
STATE_TIMEOUT_MS = 30_000
NOT_ON_WHATSAPP = "This number is not on WhatsApp."

pytestmark = pytest.mark.slow
expect.set_options(timeout=STATE_TIMEOUT_MS)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("dashboard")) as server:
        yield server


@dataclass(frozen=True)
class Shop:
    """A tenant of the shared server, with an API client for setting up and checking."""

    base_url: str
    api_key: str
    session_id: str
    api: httpx.Client

    def broadcasts(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.get("/api/whatsapp/broadcasts").json()["items"]
        return items

    def simulator(self, **scenario: object) -> None:
        response = self.api.put("/api/whatsapp/simulator", json=scenario)
        assert response.status_code == 200, response.text

    def state(self, broadcast_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(f"/api/whatsapp/broadcasts/{broadcast_id}").json()
        return body

    def status(self, broadcast_id: int) -> str:
        return str(self.state(broadcast_id)["status"])

    def wait_until(self, broadcast_id: int, statuses: set[str]) -> dict[str, Any]:
        """Poll the API until the broadcast reaches one of ``statuses``."""
        deadline = time.monotonic() + STATE_TIMEOUT_MS / 1000
        while True:
            state = self.state(broadcast_id)
            if state["status"] in statuses:
                return state
            assert time.monotonic() < deadline, state
            time.sleep(0.2)


async def _new_tenant(database_url: str, name: str) -> tuple[str, str]:
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            created = await create_tenant(
                session, SystemClock(), name=name, region="IL", provider="simulator"
            )
            # No pacing, so a test waits for the page, not for the pace.
            await update_session_settings(
                session,
                created.session_id,
                SessionSettings(max_concurrency=2, rate_per_minute=0, jitter_ms=0),
            )
    finally:
        await database.dispose()
    return created.api_key, created.session_id


def run_async(coroutine: Any) -> Any:
    """Run a coroutine to its end on a thread of its own, away from Playwright's loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture
def shop(dashboard: Server, request: pytest.FixtureRequest) -> Iterator[Shop]:
    name = request.node.name.removeprefix("test_")[:60].replace("_", " ").capitalize()
    api_key, session_id = run_async(_new_tenant(dashboard.env["WABROADCAST_DATABASE_URL"], name))
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=dashboard.base_url, headers=headers, timeout=30) as api:
        yield Shop(dashboard.base_url, api_key, session_id, api)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True
    )
    context.set_default_timeout(STATE_TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, shop: Shop, path: str = "/") -> None:
    page.goto(shop.base_url + path)
    page.get_by_label("API key").fill(shop.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def fill_new_broadcast(page: Page, shop: Shop, message: str, recipients: str) -> None:
    page.goto(shop.base_url + "/broadcasts/new")
    page.get_by_label("Message").fill(message)
    page.get_by_label("Phone numbers").fill(recipients)


def count(page: Page, name: str) -> Any:
    return page.locator(f"#broadcast-summary [data-count={name}] dd")


# --- the spec's acceptance test, in the UI -----------------------------------------


def test_partial_failure_shows_partial_sent_2_failed_1_and_the_reason(
    page: Page, shop: Shop
) -> None:
    numbers = il_numbers(3, 100)
    shop.simulator(fail_numbers={numbers[1]: "NOT_ON_WHATSAPP"}, latency_ms=300)
    sign_in(page, shop)
    fill_new_broadcast(page, shop, "Our store opens at 9 tomorrow", "\n".join(numbers))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("[data-preview-count=valid] dd")).to_have_text("3")
    screenshot(page, "new_broadcast_preview")

    page.get_by_role("button", name="Send broadcast").click()
    expect(page.get_by_role("heading", name="Broadcast accepted")).to_be_visible()
    broadcast_id = shop.broadcasts()[0]["broadcast_id"]
    assert page.url.endswith(f"/broadcasts/{broadcast_id}?created=true")
    expect(page.locator("[data-proof=broadcast_id]")).to_have_text(str(broadcast_id))
    expect(page.locator("[data-proof=queued_count]")).to_have_text("3")
    expect(page.locator("[data-proof=invalid_recipients_count]")).to_have_text("0")
    # Marks this page load: if the page reloaded to show the result, the mark would be gone.
    page.evaluate("window.sameDocument = true")

    summary = page.locator("#broadcast-summary")
    expect(summary.locator(".title-row [data-status]")).to_have_text("partial")
    expect(count(page, "sent")).to_have_text("2")
    expect(count(page, "failed")).to_have_text("1")
    expect(count(page, "queued")).to_have_text("0")
    failed_row = page.locator(f"#recipients tr[data-phone='{numbers[1]}']")
    expect(failed_row.locator("[data-status]")).to_have_text("failed")
    expect(failed_row.locator(".reason")).to_contain_text("NOT_ON_WHATSAPP")
    expect(failed_row.locator(".reason")).to_contain_text(NOT_ON_WHATSAPP)
    assert page.evaluate("window.sameDocument") is True, "the page reloaded instead of refreshing"
    expect(page.locator("[data-event=finished] time")).to_be_visible()
    screenshot(page, "broadcast_partial")

    page.get_by_label("Status").select_option("failed")  # applies itself
    expect(page).to_have_url(re.compile(r"[?&]status=failed"))
    expect(page.locator("#recipients tbody tr")).to_have_count(1)
    expect(page.locator("#recipients tbody tr")).to_have_attribute("data-phone", numbers[1])

    page.get_by_role("link", name="Broadcasts", exact=True).click()
    row = page.locator(f"tr[data-broadcast-id='{broadcast_id}']")
    expect(row.locator("[data-status]")).to_have_text("partial")
    expect(row.locator("[data-count=sent]")).to_have_text("2")
    expect(row.locator("[data-count=failed]")).to_have_text("1")
    expect(page.locator("[data-metric=failed_last_5m] .tile-value")).to_have_text("1")
    expect(page.locator("[data-metric=sent_last_5m] .tile-value")).to_have_text("2")
    screenshot(page, "overview")


# --- never twice ---------------------------------------------------------------------


def test_a_double_click_and_a_refresh_create_one_broadcast(page: Page, shop: Shop) -> None:
    sign_in(page, shop)
    fill_new_broadcast(page, shop, "Only once, please", "0502345678\n0523456789")
    page.get_by_role("button", name="Send broadcast").dblclick()
    expect(page.get_by_role("heading", name="Broadcast accepted")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Broadcast accepted")).to_be_visible()
    page.go_back()
    page.wait_for_load_state()
    assert len(shop.broadcasts()) == 1


def test_the_same_form_posted_twice_at_once_makes_one_broadcast(page: Page, shop: Shop) -> None:
    """Without the button guard (say, JavaScript off), the form's Idempotency-Key holds."""
    sign_in(page, shop)
    fill_new_broadcast(page, shop, "Posted twice", "0502345678")
    landed = page.evaluate(
        """async () => {
            const form = document.getElementById("new-broadcast");
            const post = () => fetch(form.action, {method: "POST", body: new FormData(form)});
            const answers = await Promise.all([post(), post()]);
            return answers.map((answer) => new URL(answer.url).pathname);
        }"""
    )
    broadcasts = shop.broadcasts()
    assert len(broadcasts) == 1
    assert landed == [f"/broadcasts/{broadcasts[0]['broadcast_id']}"] * 2


# --- WhatsApp not connected -------------------------------------------------------------


def test_a_disconnected_session_shows_the_banner_and_the_forms_503_message(
    page: Page, shop: Shop
) -> None:
    shop.simulator(connected=False)
    sign_in(page, shop)
    banner = page.locator(".banner")
    expect(banner).to_contain_text("WhatsApp not connected")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "disconnected")

    fill_new_broadcast(page, shop, "Will not go out", "0502345678")
    expect(banner).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/broadcasts")) as answer:
        page.get_by_role("button", name="Send broadcast").click()
    assert answer.value.status == 503
    expect(page.get_by_role("alert").filter(has_text="Connect first")).to_have_text(
        "WhatsApp is not connected. Connect first."
    )
    expect(page.get_by_label("Message")).to_have_value("Will not go out")
    assert "error_code" not in page.content()
    screenshot(page, "not_connected")
    assert shop.broadcasts() == []

    shop.simulator(connected=True)
    expect(banner).to_have_count(0)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "connected")


# --- languages, phones -----------------------------------------------------------------


def test_hebrew_renders_right_to_left(page: Page, shop: Shop) -> None:
    shop.api.post(
        "/api/whatsapp/broadcasts", json={"message": "שלום לכולם", "recipients": ["0502345678"]}
    )
    sign_in(page, shop)
    page.get_by_role("link", name="עברית").click()
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    expect(html).to_have_attribute("lang", "he")
    expect(page.get_by_role("link", name="תפוצה חדשה").first).to_be_visible()
    direction = page.evaluate("getComputedStyle(document.body).direction")
    assert direction == "rtl"
    screenshot(page, "overview_he")
    page.set_viewport_size({"width": 390, "height": 844})
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390, "the page scrolls sideways on a phone"
    screenshot(page, "overview_he_phone")
    page.get_by_role("link", name="תפוצה חדשה").first.click()
    expect(page.get_by_label("הודעה")).to_be_visible()
    expect(page.get_by_label("מספרי טלפון")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(html).to_have_attribute("dir", "ltr")


# --- signing in and out, cross-site requests ----------------------------------------------


def test_sign_in_and_out(page: Page, shop: Shop) -> None:
    page.goto(shop.base_url + "/broadcasts/new")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fbroadcasts%2Fnew$"))
    page.get_by_label("API key").fill("wab_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")
    screenshot(page, "sign_in")
    page.get_by_label("API key").fill(shop.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(shop.base_url + "/broadcasts/new")
    cookie = next(c for c in page.context.cookies() if c["name"] == "wab_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("wab_session") == -1
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(shop.base_url + "/")
    expect(page).to_have_url(shop.base_url + "/sign-in")


def test_forms_posted_without_the_csrf_token_or_from_another_site_are_refused(
    page: Page, shop: Shop
) -> None:
    # An account-level failure pauses the broadcast: it stays cancellable while we try.
    shop.simulator(fail_numbers={"+972502345678": "ACCOUNT_RESTRICTED"})
    created = shop.api.post(
        "/api/whatsapp/broadcasts", json={"message": "keep me", "recipients": ["0502345678"]}
    ).json()
    broadcast_id = created["broadcast_id"]
    assert shop.wait_until(broadcast_id, {"paused"})["status"] == "paused"
    sign_in(page, shop, f"/broadcasts/{broadcast_id}")

    forged = page.evaluate(
        """async (id) => {
            const answer = await fetch(`/broadcasts/${id}/cancel`, {method: "POST"});
            return [answer.status, await answer.text()];
        }""",
        broadcast_id,
    )
    assert forged[0] == 403
    assert "did not come from this dashboard" in forged[1]

    evil = "http://evil.example/"
    page.route(
        evil,
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form id="f" method="post" action="{shop.base_url}/broadcasts/{broadcast_id}'
                '/cancel"></form><script>document.getElementById("f").submit()</script>'
            ),
        ),
    )
    page.goto(evil)
    # The SameSite=Strict cookie stays home: the dashboard sees nobody signed in.
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    assert shop.status(broadcast_id) == "paused"

    page.goto(f"{shop.base_url}/broadcasts/{broadcast_id}")
    page.get_by_role("button", name="Cancel broadcast").click()
    expect(page.get_by_role("status").filter(has_text="cancelled")).to_have_text(
        "The broadcast was cancelled."
    )
    assert shop.status(broadcast_id) == "cancelled"


# --- preview, pagination, export --------------------------------------------------------


def test_preview_counts_pasted_numbers_and_a_csv_upload(page: Page, shop: Shop) -> None:
    sign_in(page, shop)
    fill_new_broadcast(page, shop, "Counting", "0502345678, +972 50-234-5678\n123\nhello")
    contacts = FilePayload(
        name="contacts.csv",
        mimeType="text/csv",
        buffer=b"name,phone,lead_id\nNoa,052-345-6789,7\nDan,0502345678,8\n",
    )
    page.get_by_label("Or upload a CSV file").set_input_files(contacts)
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("[data-preview]")
    expect(preview.locator("[data-preview-count=valid] dd")).to_have_text("2")
    expect(preview.locator("[data-preview-count=invalid] dd")).to_have_text("2")
    expect(preview.locator("[data-preview-count=duplicates] dd")).to_have_text("2")
    expect(preview.locator("[data-reason=too_short]")).to_contain_text("too short")
    expect(preview.locator("[data-reason=invalid_format]")).to_contain_text("not a phone number")
    assert shop.broadcasts() == []


def test_recipients_page_through_filter_and_export_failures_as_csv(page: Page, shop: Shop) -> None:
    numbers = il_numbers(60, 1000)
    failing = numbers[5:]
    shop.simulator(fail_numbers=dict.fromkeys(failing, "NOT_ON_WHATSAPP"))
    # A list this bad would trip the error-rate brake; this test wants it to finish.
    brake_off = shop.api.patch(
        f"/api/whatsapp/sessions/{shop.session_id}", json={"pause_error_rate": 1.0}
    )
    assert brake_off.status_code == 200, brake_off.text
    created = shop.api.post(
        "/api/whatsapp/broadcasts", json={"message": "Sixty", "recipients": numbers}
    ).json()
    broadcast_id = created["broadcast_id"]
    finished = shop.wait_until(broadcast_id, {"completed", "partial", "failed"})
    assert (finished["status"], finished["failed_count"]) == ("partial", 55)
    sign_in(page, shop, f"/broadcasts/{broadcast_id}")
    rows = page.locator("#recipients tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(10)
    assert rows.first.get_attribute("data-phone") == numbers[50]
    screenshot(page, "recipients_page_2")
    page.get_by_role("link", name="First page").click()
    expect(rows).to_have_count(50)

    page.get_by_label("Status").select_option("failed")  # applies itself
    expect(page).to_have_url(re.compile(r"[?&]status=failed"))
    expect(rows).to_have_count(50)
    expect(page.locator("#recipients [data-status]").filter(has_text="sent")).to_have_count(0)
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(5)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download failed recipients (CSV)").click()
    saved = download.value.path()
    content = Path(saved).read_bytes().decode("utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(content)))
    assert [r["phone"] for r in exported] == failing
    assert {(r["status"], r["error_code"], r["error_message"]) for r in exported} == {
        ("failed", "NOT_ON_WHATSAPP", NOT_ON_WHATSAPP)
    }
