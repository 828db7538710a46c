"""The dashboard's Connect flow over HTTP on both databases: linking a phone by QR code.

Only providers whose sessions are linked by QR code (the Baileys gateway) are
offered Connect. A gateway that cannot be reached is a sentence in the page's
language with the gateway's reason, never an error page. A reachable gateway is
the real gateway code with a fake WhatsApp behind it (gateway/test/fake-socket-server.js):
the test makes "WhatsApp" show a QR code, then open the connection. The browser
test (tests/e2e/test_dashboard_connect.py) drives the same pages through Chromium.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.integration.test_dashboard import sign_in, text_of
from tests.support.databases import IN_CI
from tests.support.tenants import TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.context import AppContext

SESSIONS_API = "/api/whatsapp/sessions"
GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
HARNESS = GATEWAY / "test" / "fake-socket-server.js"
GATEWAY_TOKEN = "fake-gateway-token-5150"
UNREACHABLE = "http://127.0.0.1:9"
QR_TEXT = "2@fake-pairing-code,Zm9vYmFy,YmF6cXV4,ZmFrZQ=="
USER = {"id": "972501234567:3@s.whatsapp.net", "name": "Shop"}
NOT_LINKABLE = (
    "Simulator sessions are connected in their provider's own console, not by QR code here."
)


@dataclass(frozen=True)
class FakeGateway:
    """The real gateway over a fake WhatsApp: ``emit`` makes a session's socket speak."""

    base_url: str
    token: str

    def emit(
        self, session_id: str, data: dict[str, Any], user: dict[str, str] | None = None
    ) -> None:
        body: dict[str, Any] = {"event": "connection.update", "data": data}
        if user is not None:
            body["user"] = user
        response = httpx.post(
            f"{self.base_url}/_test/sessions/{session_id}/emit",
            json=body,
            headers={"X-Gateway-Token": self.token},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def state(self, session_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base_url}/sessions/{session_id}",
            headers={"X-Gateway-Token": self.token},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for_state(self, session_id: str, state: str) -> None:
        """The gateway draws a QR code asynchronously: wait until it reports ``state``."""
        deadline = time.monotonic() + 10
        while self.state(session_id)["state"] != state:
            assert time.monotonic() < deadline, self.state(session_id)
            time.sleep(0.02)


@contextlib.contextmanager
def fake_gateway(folder: Path) -> Iterator[FakeGateway]:
    """``node gateway/test/fake-socket-server.js`` on a free port: skipped without Node
    (or without ``npm ci`` in gateway/) locally, a failure under CI."""
    node = shutil.which("node")
    if node is None or not (GATEWAY / "node_modules").exists():
        message = "the gateway needs Node and `npm ci` in gateway/ (make test does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    log = (folder / "gateway.log").open("w")
    process = subprocess.Popen(
        [node, str(HARNESS)],
        env={
            **os.environ,
            "WABROADCAST_GATEWAY_TOKEN": GATEWAY_TOKEN,
            "WABROADCAST_GATEWAY_PORT": str(port),
            "WABROADCAST_GATEWAY_DATA": str(folder / "gateway-data"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                listed = httpx.get(
                    f"{base_url}/sessions", headers={"X-Gateway-Token": GATEWAY_TOKEN}
                )
                if listed.is_success:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "gateway.log").read_text())
            time.sleep(0.05)
        yield FakeGateway(base_url, GATEWAY_TOKEN)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[FakeGateway]:
    with fake_gateway(tmp_path) as running:
        yield running


@pytest.fixture
async def browser(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like a browser of its own."""
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def csrf(browser: httpx.AsyncClient, tenant: TenantFixture) -> str:
    return await sign_in(browser, tenant)


async def add_baileys(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    base_url: str,
    *,
    session_id: str = "phone",
    token: str = GATEWAY_TOKEN,
) -> None:
    response = await client.post(
        SESSIONS_API,
        json={
            "session_id": session_id,
            "provider": "baileys",
            "config": {"base_url": base_url, "token": token},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


def connect_forms(page: httpx.Response) -> list[str]:
    """The session ids the page offers a Connect button for."""
    return re.findall(r'<form method="post" action="/sessions/([^/"]+)/connect"', page.text)


# --- who is offered Connect ----------------------------------------------------------


async def test_connect_is_offered_only_for_sessions_linked_by_qr_code(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    await add_baileys(client, tenant, UNREACHABLE)
    listed = await browser.get("/sessions")
    assert listed.status_code == 200
    assert connect_forms(listed) == ["phone"]
    assert 'aria-label="Connect session phone: link a phone by QR code"' in listed.text
    edit = await browser.get("/sessions/phone/edit")
    assert connect_forms(edit) == ["phone"]
    assert 'href="/sessions/phone/connect"' in edit.text
    assert "Link a phone" in text_of(edit)
    simulator_edit = await browser.get(f"/sessions/{tenant.session_id}/edit")
    assert connect_forms(simulator_edit) == []
    assert "/connect" not in simulator_edit.text


async def test_a_simulator_sessions_connect_address_says_its_console_connects_it(
    browser: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    page = await browser.get(f"/sessions/{tenant.session_id}/connect")
    assert page.status_code == 409
    assert NOT_LINKABLE in text_of(page)
    assert 'data-error-code="NOT_LINKABLE"' in page.text
    assert connect_forms(page) == []
    assert "data-live-refresh-ms" not in page.text
    posted = await browser.post(f"/sessions/{tenant.session_id}/connect", data={"csrf_token": csrf})
    assert posted.status_code == 409
    assert NOT_LINKABLE in text_of(posted)
    browser.cookies.set("wab_lang", "he")
    hebrew = await browser.get(f"/sessions/{tenant.session_id}/connect")
    assert hebrew.status_code == 409
    assert "חיבורי Simulator מחוברים במסוף של הספק עצמו, לא בקוד QR כאן." in text_of(hebrew)


# --- a gateway that cannot be reached --------------------------------------------------


async def test_an_unreachable_gateway_is_a_sentence_with_its_reason(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    await add_baileys(client, tenant, UNREACHABLE)
    posted = await browser.post("/sessions/phone/connect", data={"csrf_token": csrf})
    assert posted.status_code == 502
    text = text_of(posted)
    assert "The gateway did not answer (" in text
    assert "the gateway at http://127.0.0.1:9 could not be reached" in text
    assert "Check that it is running" in text
    assert 'data-error-code="PROVIDER_SETUP_FAILED"' in posted.text
    assert 'role="alert"' in posted.text
    # Try again: the Connect button is still there.
    assert connect_forms(posted) == ["phone"]
    assert GATEWAY_TOKEN not in posted.text

    page = await browser.get("/sessions/phone/connect")
    assert page.status_code == 502
    assert "The gateway did not answer (" in text_of(page)
    assert 'data-live-url="/sessions/phone/connect/live"' in page.text
    assert 'data-live-refresh-ms="2000"' in page.text
    # The live part answers 200 so the page shows the sentence, and recovers by itself.
    part = await browser.get("/sessions/phone/connect/live")
    assert part.status_code == 200
    assert 'id="link-state"' in part.text
    assert "<html" not in part.text
    assert "The gateway did not answer (" in text_of(part)

    logout = await browser.post(
        "/sessions/phone/logout", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert logout.status_code == 502
    assert "The gateway did not answer (" in text_of(logout)

    browser.cookies.set("wab_lang", "he")
    hebrew = await browser.post("/sessions/phone/connect", data={"csrf_token": csrf})
    assert hebrew.status_code == 502
    assert '<html lang="he" dir="rtl">' in hebrew.text
    assert "השער לא ענה (" in text_of(hebrew)
    assert "could not be reached" in text_of(hebrew)


async def test_the_posts_need_the_csrf_token_and_log_out_a_tick(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, csrf: str
) -> None:
    await add_baileys(client, tenant, UNREACHABLE)
    for path in ("/sessions/phone/connect", "/sessions/phone/logout"):
        missing = await browser.post(path, data={"confirm": "yes"})
        assert missing.status_code == 403, path
        wrong = await browser.post(path, data={"csrf_token": "not-the-token", "confirm": "yes"})
        assert wrong.status_code == 403, path
        assert "This form has expired or did not come from this dashboard." in text_of(wrong)
    unconfirmed = await browser.post("/sessions/phone/logout", data={"csrf_token": csrf})
    assert unconfirmed.status_code == 400
    assert "Tick “Yes, log out session phone” to confirm, then log out again." in text_of(
        unconfirmed
    )
    # A reload of the refused form's address goes back to the Connect page.
    again = await browser.get("/sessions/phone/logout")
    assert (again.status_code, again.headers["location"]) == (303, "/sessions/phone/connect")
    # Someone else's session, or none: not found.
    assert (await browser.get("/sessions/nobody/connect")).status_code == 404
    assert (
        await browser.post("/sessions/nobody/connect", data={"csrf_token": csrf})
    ).status_code == 404


async def test_pages_need_a_signed_in_visitor(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/sessions/phone/connect")
    assert page.status_code == 303
    assert page.headers["location"] == "/sign-in?next=%2Fsessions%2Fphone%2Fconnect"
    poll = await browser.get("/sessions/phone/connect/live", headers={"X-Live-Refresh": "1"})
    assert poll.status_code == 401


# --- a gateway that answers (the real gateway over a fake WhatsApp) ---------------------


async def test_connect_shows_the_qr_code_then_connected_then_logged_out(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    csrf: str,
    gateway: FakeGateway,
) -> None:
    await add_baileys(client, tenant, gateway.base_url)
    before = await browser.get("/sessions/phone/connect")
    assert before.status_code == 200
    assert 'data-link-state="not_started"' in before.text
    assert "This session is not started on the gateway yet." in text_of(before)
    assert connect_forms(before) == ["phone"]

    started = await browser.post("/sessions/phone/connect", data={"csrf_token": csrf})
    assert (started.status_code, started.headers["location"]) == (303, "/sessions/phone/connect")
    waiting = await browser.get("/sessions/phone/connect")
    assert 'data-link-state="connecting"' in waiting.text
    assert "Connecting to WhatsApp…" in text_of(waiting)

    gateway.emit("phone", {"qr": QR_TEXT})
    gateway.wait_for_state("phone", "qr")
    part = await browser.get("/sessions/phone/connect/live")
    assert part.status_code == 200
    assert 'data-link-state="qr"' in part.text
    assert '<img class="qr-code" src="data:image/png;base64,' in part.text
    assert 'alt="QR code to link a phone to session phone"' in part.text
    assert "Settings → Linked devices → Link a device." in text_of(part)
    qr_page = await browser.get("/sessions/phone/connect")
    assert 'src="data:image/png;base64,' in qr_page.text
    assert "img-src 'self' data:" in qr_page.headers["content-security-policy"]

    browser.cookies.set("wab_lang", "he")
    hebrew = await browser.get("/sessions/phone/connect/live")
    assert "הגדרות ← מכשירים מקושרים ← קישור מכשיר." in text_of(hebrew)
    browser.cookies.set("wab_lang", "en")

    gateway.emit("phone", {"connection": "open"}, user=USER)
    gateway.wait_for_state("phone", "connected")
    connected = await browser.get("/sessions/phone/connect/live")
    assert 'data-link-state="connected"' in connected.text
    assert "Connected as \u2066+972 50-123-4567\u2069." in text_of(connected)
    assert "data:image/png" not in connected.text
    listed = await browser.get("/sessions")
    assert 'data-session-id="phone"' in listed.text

    unconfirmed = await browser.post("/sessions/phone/logout", data={"csrf_token": csrf})
    assert unconfirmed.status_code == 400
    assert 'data-link-state="connected"' in unconfirmed.text
    logged_out = await browser.post(
        "/sessions/phone/logout", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert logged_out.status_code == 303
    assert logged_out.headers["location"] == "/sessions/phone/connect?notice=logged_out"
    after = await browser.get(logged_out.headers["location"])
    assert "The phone was logged out of session phone." in text_of(after)
    assert 'data-link-state="logged_out"' in after.text
    assert connect_forms(after) == ["phone"]
    for page in (before, waiting, part, qr_page, connected, listed, after):
        assert GATEWAY_TOKEN not in page.text
