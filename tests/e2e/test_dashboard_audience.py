"""The Opt-outs and Webhooks pages in a real browser (Debian's Chromium via Playwright).

A CSV file is imported through the file input as a person would, and the pages are
checked to fit a 375 px phone in both languages. Screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server

ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
def page(chromium: Browser, server: Server) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fits(page: Page, width: int, path: str) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{path} scrolls sideways at {width}px ({wide}px wide)"


def test_import_a_csv_of_opt_outs_and_the_pages_on_a_phone(
    page: Page, server: Server, tmp_path: Path
) -> None:
    page.goto(server.base_url + "/opt-outs")
    page.get_by_label("API key").fill(server.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Opt-outs", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Opt-outs")).to_have_attribute("aria-current", "page")

    upload = tmp_path / "opt-outs.csv"
    upload.write_text("name,phone\nDana,050-234-5678\nBad,abc\nEli,+972 50 000 0007\n", "utf-8")
    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page).to_have_url(re.compile(r"/opt-outs\?added=2&already=0&invalid=1"))
    expect(page.locator("[data-result=added]")).to_have_text("2")
    expect(page.locator("[data-invalid-input=abc]")).to_contain_text("not a phone number")
    expect(page.locator("tr[data-phone='+972502345678']")).to_contain_text("+972 50-234-5678")
    expect(page.locator("tr[data-phone='+972502345678']")).to_contain_text("CSV import")
    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        listed = api.get(
            "/api/whatsapp/opt-outs", headers={"Authorization": f"Bearer {server.api_key}"}
        ).json()
    assert sorted((i["phone"], i["source"]) for i in listed["items"]) == [
        ("+972500000007", "import"),
        ("+972502345678", "import"),
    ]
    screenshot(page, "opt_outs_imported")

    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL").fill("https://crm.example.com/hooks/a-rather-long-path/for-phones")
    page.get_by_label("broadcast.queued").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("[data-new-secret]")).to_be_visible()
    detail = page.url
    page.set_viewport_size({"width": 375, "height": 800})
    fits(page, 375, "the new secret")
    screenshot(page, "webhook_secret_phone")

    phone = page.context.browser
    assert phone is not None
    for language in ("en", "he"):
        narrow = phone.new_context(viewport={"width": 375, "height": 800})
        narrow.add_cookies([{"name": "wab_lang", "value": language, "url": server.base_url}])
        tab = narrow.new_page()
        tab.goto(server.base_url + "/opt-outs")
        tab.locator("#api_key").fill(server.api_key)
        tab.locator("form button[type=submit]").first.click()
        expect(tab.locator("#opt-out-list")).to_be_visible()
        for path in ("/opt-outs", "/webhooks", detail.removeprefix(server.base_url)):
            tab.goto(server.base_url + path)
            expect(tab.locator("html")).to_have_attribute(
                "dir", "rtl" if language == "he" else "ltr"
            )
            fits(tab, 375, path)
            name = path.strip("/").replace("/", "_").replace("-", "_")
            screenshot(tab, f"{name}_{language}_phone")
        narrow.close()
