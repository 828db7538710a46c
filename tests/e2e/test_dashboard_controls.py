"""The dashboard's campaign controls in a real browser: schedule, pause and resume, retry
failed, CSV files as spreadsheets save them, and the Hebrew pages they show.

One server (embedded worker, simulated WhatsApp) serves the module, with one attempt per
recipient so a failure is final at once; each test has a tenant of its own. Time is the
server's own clock: a schedule is set hours ahead (and cancelled) or a few seconds ahead
(and watched start); waits are for states the page or the API reaches, never fixed sleeps.
Hebrew screenshots are written to tests/e2e/artifacts/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect

from tests.e2e.conftest import Server, running_server
from tests.e2e.test_dashboard import (
    STATE_TIMEOUT_MS,
    Shop,
    _new_tenant,
    run_async,
    screenshot,
    sign_in,
)
from tests.support.rows import il_numbers

pytestmark = pytest.mark.slow
expect.set_options(timeout=STATE_TIMEOUT_MS)

JERUSALEM = ZoneInfo("Asia/Jerusalem")
FINISHED = {"completed", "partial", "failed", "cancelled"}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One attempt per recipient: a failure the simulator is told to give is final at once.
    extra = {"WABROADCAST_MAX_ATTEMPTS": "1"}
    with running_server(tmp_path_factory.mktemp("controls"), extra) as server:
        yield server


@pytest.fixture
def shop(dashboard: Server, request: pytest.FixtureRequest) -> Iterator[Shop]:
    name = request.node.name.removeprefix("test_")[:60].replace("_", " ").capitalize()
    api_key, session_id = run_async(_new_tenant(dashboard.env["WABROADCAST_DATABASE_URL"], name))
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=dashboard.base_url, headers=headers, timeout=30) as api:
        yield Shop(dashboard.base_url, api_key, session_id, api)


@pytest.fixture
def open_page(chromium: Browser) -> Iterator[Callable[..., Page]]:
    """A tab in a fresh browser context (a time zone, a viewport); no script errors allowed."""
    contexts = []
    errors: list[str] = []

    def opener(
        *, timezone_id: str = "UTC", width: int = 1280, height: int = 800, locale: str = "en-US"
    ) -> Page:
        context = chromium.new_context(
            viewport={"width": width, "height": height}, locale=locale, timezone_id=timezone_id
        )
        context.set_default_timeout(STATE_TIMEOUT_MS)
        contexts.append(context)
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(str(error)))
        return tab

    yield opener
    for context in contexts:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    return open_page()


def create(shop: Shop, recipients: list[Any], message: str = "Hello", **extra: Any) -> int:
    answer = shop.api.post(
        "/api/whatsapp/broadcasts", json={"message": message, "recipients": recipients, **extra}
    )
    assert answer.status_code == 202, answer.text
    broadcast_id: int = answer.json()["broadcast_id"]
    return broadcast_id


def recipients(shop: Shop, broadcast_id: int, status: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"limit": 200}
    if status:
        params["status"] = status
    answer = shop.api.get(f"/api/whatsapp/broadcasts/{broadcast_id}/recipients", params=params)
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def pace(shop: Shop, rate_per_minute: float) -> None:
    answer = shop.api.patch(
        f"/api/whatsapp/sessions/{shop.session_id}", json={"rate_per_minute": rate_per_minute}
    )
    assert answer.status_code == 200, answer.text


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STATE_TIMEOUT_MS / 1000
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def summary_count(page: Page, name: str) -> Any:
    return page.locator(f"#broadcast-summary [data-count={name}] dd")


def badge(page: Page) -> Any:
    return page.locator("#broadcast-summary .title-row [data-status]")


def notice(page: Page) -> Any:
    return page.locator("p.notice[role=status]")


# --- scheduling --------------------------------------------------------------------


def test_a_broadcast_scheduled_from_the_form_waits_shows_its_start_and_cancels(
    open_page: Callable[..., Page], shop: Shop
) -> None:
    """The time typed is the browser's local time (Jerusalem here), sent with its offset."""
    page = open_page(timezone_id="Asia/Jerusalem")
    sign_in(page, shop, "/broadcasts/new")
    expect(page.locator("[data-zone-note]")).to_contain_text("Asia/Jerusalem")
    local_start = (datetime.now(JERUSALEM) + timedelta(hours=3)).replace(second=0, microsecond=0)
    expected_utc = local_start.astimezone(UTC)

    page.get_by_label("Message").fill("Tomorrow's sale")
    page.get_by_label("Phone numbers").fill("0502345678\n0523456789")
    # A time already past is refused by a sentence next to the form, nothing stored.
    past = datetime.now(JERUSALEM) - timedelta(hours=1)
    page.get_by_label("Send later (optional)").fill(past.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Send broadcast").click()
    expect(page.locator("#form-error")).to_contain_text("The send time is in the past")
    assert shop.broadcasts() == []

    page.get_by_label("Send later (optional)").fill(local_start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Send broadcast").click()
    expect(page.get_by_role("heading", name="Broadcast accepted")).to_be_visible()
    broadcast_id = shop.broadcasts()[0]["broadcast_id"]
    state = shop.state(broadcast_id)
    assert state["status"] == "scheduled"
    assert datetime.fromisoformat(state["send_at"]) == expected_utc
    expect(badge(page)).to_have_text("scheduled")
    expect(page.locator("[data-proof-scheduled] time")).to_have_attribute(
        "datetime", expected_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    starts = page.locator("#broadcast-summary [data-waiting=scheduled]")
    expect(starts).to_contain_text("Starts")
    expect(starts.locator("time")).to_have_attribute(
        "datetime", expected_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    expect(page.locator("[data-event=scheduled] time")).to_be_visible()
    # Nothing may be paused before its time; cancelling is what a scheduled one offers.
    expect(page.get_by_role("button", name="Pause sending")).to_have_count(0)

    page.get_by_role("link", name="Broadcasts", exact=True).click()
    row = page.locator(f"tr[data-broadcast-id='{broadcast_id}']")
    expect(row.locator("[data-status]")).to_have_text("scheduled")
    expect(row.locator("[data-waiting=scheduled]")).to_contain_text("Starts")

    page.goto(f"{shop.base_url}/broadcasts/{broadcast_id}")
    page.get_by_role("button", name="Cancel broadcast").click()
    expect(notice(page)).to_have_text("The broadcast was cancelled.")
    expect(badge(page)).to_have_text("cancelled")
    cancelled = shop.state(broadcast_id)
    assert (cancelled["status"], cancelled["sent_count"], cancelled["cancelled_count"]) == (
        "cancelled",
        0,
        2,
    )
    # What really happened: nothing sent, both cancelled; not "100 %".
    expect(page.locator("#broadcast-summary .progress-text")).to_have_text("0/2 · 2 cancelled")


def test_a_broadcast_scheduled_seconds_ahead_starts_by_itself_on_its_page(
    page: Page, shop: Shop
) -> None:
    sign_in(page, shop)
    send_at = datetime.now(UTC) + timedelta(seconds=6)
    broadcast_id = create(shop, il_numbers(2, 300), "On time", send_at=send_at.isoformat())
    page.goto(f"{shop.base_url}/broadcasts/{broadcast_id}")
    expect(badge(page)).to_have_text("scheduled")
    expect(page.locator("#broadcast-summary [data-waiting=scheduled]")).to_be_visible()
    # The live refresh shows it start and finish, without a reload.
    page.evaluate("window.sameDocument = true")
    expect(badge(page)).to_have_text("completed")
    expect(summary_count(page, "sent")).to_have_text("2")
    assert page.evaluate("window.sameDocument") is True
    finished = shop.state(broadcast_id)
    assert datetime.fromisoformat(finished["started_at"]) >= send_at - timedelta(seconds=5)


# --- pause and resume --------------------------------------------------------------


def test_pause_and_resume_by_hand_each_confirmed(page: Page, shop: Shop) -> None:
    numbers = il_numbers(12, 400)
    # One message every 3 s: the broadcast is still sending when it is paused.
    pace(shop, 20)
    sign_in(page, shop)
    broadcast_id = create(shop, numbers, "Slow and steady")
    # A second broadcast on the same session waits for the first, and says so.
    behind_id = create(shop, il_numbers(2, 450), "Next in line")
    page.goto(f"{shop.base_url}/broadcasts/{behind_id}")
    waiting = page.locator("#broadcast-summary [data-waiting=behind_broadcast] a")
    expect(waiting).to_have_text(
        f"Waiting for broadcast #{broadcast_id}, which goes first on the same session."
    )
    expect(waiting).to_have_attribute("href", f"/broadcasts/{broadcast_id}")
    page.goto(f"{shop.base_url}/")
    listed = page.locator(f"tr[data-broadcast-id='{behind_id}'] [data-waiting]")
    expect(listed).to_have_attribute("data-waiting", "behind_broadcast")
    expect(
        page.locator(f"tr[data-broadcast-id='{broadcast_id}'] [data-estimate] time")
    ).to_be_visible()
    assert shop.state(broadcast_id)["estimated_finish_at"] is not None
    page.get_by_role("link", name=f"#{broadcast_id}", exact=True).click()
    expect(page.locator("#broadcast-summary [data-estimate] time")).to_be_visible()
    pause = page.get_by_role("button", name="Pause sending")
    expect(pause).to_be_visible()

    # The box must be ticked: the browser holds the form, and the server refuses it too.
    refused = page.evaluate(
        """async () => {
            const form = document.getElementById("pause-form");
            const body = new FormData(form);
            body.delete("confirm");
            const answer = await fetch(form.action, {method: "POST", body});
            return [answer.status, await answer.text()];
        }"""
    )
    assert refused[0] == 400
    assert f"Tick “Yes, pause broadcast #{broadcast_id}” to confirm" in refused[1]
    assert shop.status(broadcast_id) in {"queued", "running"}

    page.get_by_label(f"Yes, pause broadcast #{broadcast_id}").check()
    pause.click()
    expect(notice(page)).to_contain_text("The broadcast was paused")
    expect(badge(page)).to_have_text("paused")
    paused = shop.state(broadcast_id)
    assert paused["status"] == "paused"
    expect(page.locator("[data-status-reason]")).to_contain_text(
        "Paused by hand; resume it to send the rest."
    )
    # Sends already handed over finish; nothing new starts.
    wait_for(lambda: not recipients(shop, broadcast_id, "sending"), "the sends in flight")
    held = shop.state(broadcast_id)
    assert held["status"] == "paused"
    assert held["sent_count"] < len(numbers)
    assert held["queued_count"] == len(numbers) - held["sent_count"] - held["failed_count"]
    page.reload()
    expect(summary_count(page, "sent")).to_have_text(str(held["sent_count"]))
    screenshot(page, "controls_paused")

    pace(shop, 0)
    page.get_by_label(f"Yes, resume broadcast #{broadcast_id}").check()
    page.get_by_role("button", name="Resume sending").click()
    expect(notice(page)).to_have_text(
        "The broadcast was resumed: the recipients it held are sent next."
    )
    expect(badge(page)).to_have_text("completed")
    shop.api.post(f"/api/whatsapp/broadcasts/{behind_id}/cancel")
    done = shop.wait_until(broadcast_id, FINISHED)
    assert (done["status"], done["sent_count"], done["failed_count"]) == (
        "completed",
        len(numbers),
        0,
    )
    stored = recipients(shop, broadcast_id)
    assert sorted(r["phone"] for r in stored) == numbers
    assert {r["status"] for r in stored} <= {"sent", "delivered", "read"}


# --- retry failed --------------------------------------------------------------------


def test_retry_failed_by_code_then_all_that_may_pass(page: Page, shop: Shop) -> None:
    numbers = il_numbers(4, 500)
    shop.simulator(
        fail_numbers={
            numbers[0]: "SERVER_ERROR",
            numbers[1]: "CONNECTION_REFUSED",
            numbers[2]: "NOT_ON_WHATSAPP",
        }
    )
    broadcast_id = create(shop, numbers, "Second chance")
    first = shop.wait_until(broadcast_id, FINISHED)
    assert (first["status"], first["sent_count"], first["failed_count"]) == ("partial", 1, 3)
    # The causes have passed, except for the number that is not on WhatsApp.
    shop.simulator(fail_numbers={numbers[2]: "NOT_ON_WHATSAPP"})
    sign_in(page, shop, f"/broadcasts/{broadcast_id}")

    which = page.get_by_label("Failed recipients to send again")
    options = which.locator("option")
    expect(options).to_have_count(3)
    assert options.evaluate_all("all => all.map(o => o.value)") == [
        "",
        "CONNECTION_REFUSED",
        "SERVER_ERROR",
    ]
    expect(options.first).to_have_text("Every failure that may pass (2)")
    which.select_option("SERVER_ERROR")
    page.get_by_label(f"Yes, send to them again (broadcast #{broadcast_id})").check()
    page.get_by_role("button", name="Retry failed").click()
    expect(notice(page)).to_have_text("1 requeued: the failed recipient is sent again.")
    after_one = shop.wait_until(broadcast_id, FINISHED)
    assert (after_one["sent_count"], after_one["failed_count"]) == (2, 2)
    assert {r["phone"] for r in recipients(shop, broadcast_id, "failed")} == set(numbers[1:3])
    expect(summary_count(page, "sent")).to_have_text("2")

    page.reload()
    expect(page.get_by_label("Failed recipients to send again").locator("option")).to_have_count(2)
    page.get_by_label(f"Yes, send to them again (broadcast #{broadcast_id})").check()
    page.get_by_role("button", name="Retry failed").click()
    expect(notice(page)).to_have_text("1 requeued: the failed recipient is sent again.")
    final = shop.wait_until(broadcast_id, FINISHED)
    assert (final["status"], final["sent_count"], final["failed_count"]) == ("partial", 3, 1)
    failed = recipients(shop, broadcast_id, "failed")
    assert [(r["phone"], r["error_code"]) for r in failed] == [(numbers[2], "NOT_ON_WHATSAPP")]
    page.reload()
    expect(page.locator("#retry-help")).to_contain_text("None of the failures can pass")
    expect(page.get_by_role("button", name="Retry failed")).to_have_count(0)


# --- CSV files as spreadsheets save them ----------------------------------------------------


CSV_SHAPES = [
    pytest.param(
        "contacts.csv",
        b"Name,Phone Number\nNoa,050-234-5678\nDan,+972 52 345 6789\n",
        ["Noa", "Dan"],
        id="name-and-phone-number-headers",
    ),
    pytest.param(
        "אנשי-קשר.csv",
        "שם;טלפון\nנועה;0502345678\nדן;052-3456789\n".encode(),
        ["נועה", "דן"],
        id="semicolons-and-hebrew-headers",
    ),
    pytest.param(
        "excel-unicode.txt",
        "Name\tMobile\tCity\r\nNoa\t0502345678\tHaifa\r\nDan\t0523456789\tEilat\r\n".encode(
            "utf-16"
        ),
        ["Noa", "Dan"],
        id="utf16-tabs-from-excel",
    ),
]


@pytest.mark.parametrize(("filename", "content", "names"), CSV_SHAPES)
def test_a_csv_file_as_spreadsheets_save_it_is_read_and_sent(
    page: Page, shop: Shop, filename: str, content: bytes, names: list[str]
) -> None:
    sign_in(page, shop, "/broadcasts/new")
    page.get_by_label("Message").fill("Our new branch is open")
    upload = FilePayload(name=filename, mimeType="text/csv", buffer=content)
    page.get_by_label("Or upload a CSV file").set_input_files(upload)
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("[data-preview]")
    expect(preview.locator("[data-preview-count=valid] dd")).to_have_text("2")
    expect(preview.locator("[data-preview-count=invalid] dd")).to_have_text("0")

    page.get_by_role("button", name="Send broadcast").click()
    expect(page.get_by_role("heading", name="Broadcast accepted")).to_be_visible()
    expect(page.locator("[data-proof=queued_count]")).to_have_text("2")
    broadcast_id = shop.broadcasts()[0]["broadcast_id"]
    shop.wait_until(broadcast_id, FINISHED)
    stored = recipients(shop, broadcast_id)
    assert [(r["phone"], r["name"]) for r in stored] == list(
        zip(["+972502345678", "+972523456789"], names, strict=True)
    )
    # Shown in international format, with the names as given.
    first = page.locator("#recipients tr[data-phone='+972502345678']")
    expect(first.locator(".phone")).to_have_text("+972 50-234-5678")
    expect(first).to_contain_text(names[0])


# --- a personal message: previewed per recipient -----------------------------------------


def test_the_preview_shows_each_first_recipients_own_text_and_who_lacks_a_field(
    page: Page, shop: Shop
) -> None:
    sign_in(page, shop, "/broadcasts/new")
    page.get_by_label("Message").fill("Hi {{name}}, order {{order}} is ready")
    contacts = b"name,phone,order\nNoa,0502345678,A-1\n,0523456789,B-2\n"
    page.get_by_label("Or upload a CSV file").set_input_files(
        FilePayload(name="orders.csv", mimeType="text/csv", buffer=contacts)
    )
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("[data-preview]")
    expect(preview.locator("[data-sample] .sample-text")).to_have_text(
        ["Hi Noa, order A-1 is ready", "Hi , order B-2 is ready"]
    )
    missing = preview.locator("[data-missing-variable=name]")
    expect(missing).to_contain_text("1 recipient has no \u2066name\u2069")
    expect(missing).to_contain_text("+972 52-345-6789")
    assert shop.broadcasts() == []

    # A field that cannot be read is a sentence next to the form, nothing sent.
    page.get_by_label("Message").fill("Hi {{name")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview")).to_contain_text("The message's personal fields cannot")

    page.get_by_label("Message").fill("Hi {{name|default('friend')}}, order {{order}} is ready")
    page.get_by_label("Or upload a CSV file").set_input_files(
        FilePayload(name="orders.csv", mimeType="text/csv", buffer=contacts)
    )
    page.get_by_role("button", name="Send broadcast").click()
    expect(page.get_by_role("heading", name="Broadcast accepted")).to_be_visible()
    broadcast_id = shop.broadcasts()[0]["broadcast_id"]
    shop.wait_until(broadcast_id, FINISHED)
    texts = [r["rendered_message"] for r in recipients(shop, broadcast_id)]
    assert texts == ["Hi Noa, order A-1 is ready", "Hi friend, order B-2 is ready"]


# --- the proof lists what was refused, and why --------------------------------------------


def test_the_proof_lists_each_invalid_input_with_its_reason(page: Page, shop: Shop) -> None:
    sign_in(page, shop, "/broadcasts/new")
    page.get_by_label("Message").fill("Counting")
    page.get_by_label("Phone numbers").fill("0502345678\n0502345678\n123\nhello")
    page.get_by_role("button", name="Send broadcast").click()
    proof = page.locator("section.proof")
    expect(proof.locator("p").first).to_have_text(
        re.compile(r"1 recipient queued, 2 invalid \(not stored\), 1 duplicate removed\.$")
    )
    expect(proof.locator("dt")).to_have_text(
        ["Broadcast", "Queued", "Invalid (not stored)", "Duplicates removed"]
    )
    assert "queued_count" not in proof.inner_text()
    listed = proof.locator(".invalid-inputs li")
    expect(listed).to_have_count(2)
    expect(listed.nth(0)).to_have_text("123 — too short (under 9 digits)")
    expect(listed.nth(1)).to_have_text("hello — not a phone number")


# --- Hebrew: reasons translated, screenshots -------------------------------------------------


def test_hebrew_pages_translate_reasons_and_fit_a_phone(
    open_page: Callable[..., Page], shop: Shop
) -> None:
    numbers = il_numbers(3, 600)
    shop.simulator(fail_numbers={numbers[1]: "NOT_ON_WHATSAPP"})
    page = open_page()
    sign_in(page, shop)
    page.get_by_role("link", name="עברית").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")

    page.goto(f"{shop.base_url}/broadcasts/new")
    page.get_by_label("הודעה").fill("מבצע סוף העונה מתחיל מחר")
    page.get_by_label("מספרי טלפון").fill("\n".join([*numbers, numbers[0], "12345"]))
    page.get_by_role("button", name="שליחת התפוצה").click()
    expect(page.get_by_role("heading", name="התפוצה התקבלה")).to_be_visible()
    broadcast_id = shop.broadcasts()[0]["broadcast_id"]
    expect(badge(page)).to_have_text("חלקית")
    failed_row = page.locator(f"#recipients tr[data-phone='{numbers[1]}']")
    expect(failed_row.locator(".reason")).to_contain_text("המספר הזה אינו רשום ב־WhatsApp.")
    expect(page.locator(".invalid-inputs li")).to_have_text(["12345 — קצר מדי (פחות מ־9 ספרות)"])
    expect(page.locator("section.proof p").first).to_contain_text("כפילות אחת הוסרה")
    screenshot(page, "he_proof")

    page.goto(f"{shop.base_url}/broadcasts/{broadcast_id}")
    expect(failed_row.locator(".reason")).to_contain_text("המספר הזה אינו רשום ב־WhatsApp.")
    screenshot(page, "he_broadcast")

    # WhatsApp restricts the account: the header says so, and the reason is in Hebrew.
    shop.simulator(fail_numbers={numbers[0]: "ACCOUNT_RESTRICTED"})
    held_id = create(shop, numbers[:1], "נעצרת")
    shop.wait_until(held_id, {"paused"})
    page.goto(f"{shop.base_url}/broadcasts/{held_id}")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "held")
    expect(page.locator("[data-account-hold]")).to_be_visible()
    expect(page.locator("[data-status-reason]")).to_contain_text("WhatsApp הגביל את החשבון")
    screenshot(page, "he_broadcast_paused")

    page.goto(f"{shop.base_url}/")
    expect(page.locator(f"tr[data-broadcast-id='{broadcast_id}'] [data-status]")).to_have_text(
        "חלקית"
    )
    screenshot(page, "he_list")

    phone = open_page(width=375, height=800)
    phone.context.add_cookies([{"name": "wab_lang", "value": "he", "url": shop.base_url}])
    sign_in_he(phone, shop)
    for path, name in [
        (f"/broadcasts/{broadcast_id}?created=true", "he_proof_phone"),
        (f"/broadcasts/{broadcast_id}", "he_broadcast_phone"),
        ("/", "he_list_phone"),
    ]:
        phone.goto(shop.base_url + path)
        expect(phone.locator("#broadcast-list, #broadcast-summary").first).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path
        screenshot(phone, name)
    # The list's cell labels keep their words whole; the chart's top label is inside it.
    label = phone.evaluate(
        """() => {
            const style = getComputedStyle(
                document.querySelector("#broadcast-list td.message-cell"), "::before"
            );
            return [style.flexShrink, style.overflowWrap, style.content];
        }"""
    )
    assert label == ["0", "normal", '"הודעה"']
    top = phone.evaluate("document.querySelector('.minute-chart .scale').getBBox().y")
    assert top >= 0


def sign_in_he(page: Page, shop: Shop) -> None:
    page.goto(shop.base_url + "/")
    page.get_by_label("מפתח API").fill(shop.api_key)
    page.get_by_role("button", name="כניסה").click()
    expect(page.get_by_role("button", name="התנתקות")).to_be_visible()
