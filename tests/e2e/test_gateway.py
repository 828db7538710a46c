"""The real Baileys gateway (gateway/, Node, the real npm ``baileys``) behind a Baileys session.

There is no route to WhatsApp from here, so a started session never connects: what
is checked is what a business sees then, through the real gateway process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.databases import IN_CI
from tests.support.tenants import TenantFixture
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
TOKEN = "e2e-gateway-token-0001"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    """``node gateway/src/server.js`` on a free port; its base URL."""
    node = shutil.which("node")
    if node is None or not (GATEWAY / "node_modules").exists():
        message = "the gateway needs Node and `npm ci` in gateway/ (make test does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    process = subprocess.Popen(
        [node, str(GATEWAY / "src" / "server.js")],
        env={
            **os.environ,
            "WABROADCAST_GATEWAY_TOKEN": TOKEN,
            "WABROADCAST_GATEWAY_PORT": str(port),
            "WABROADCAST_GATEWAY_DATA": str(tmp_path / "gateway-data"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/sessions", headers={"X-Gateway-Token": TOKEN}).is_success:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()


async def _session(client: httpx.AsyncClient, tenant: TenantFixture, base_url: str) -> None:
    response = await client.post(
        "/api/whatsapp/sessions",
        json={
            "session_id": "phone_1",
            "provider": "baileys",
            "default": True,
            "config": {"base_url": base_url, "token": TOKEN},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


async def _broadcasts(ctx: AppContext) -> int:
    async with ctx.database.transaction() as db:
        return int(
            (await db.execute(select(func.count()).select_from(WhatsAppBroadcast))).scalar_one()
        )


async def test_a_session_that_never_links_refuses_broadcasts_through_the_real_gateway(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, gateway: str
) -> None:
    await _session(client, tenant, gateway)
    before = await client.get("/api/whatsapp/sessions/phone_1/link", headers=tenant.headers)
    assert (before.status_code, before.json()["state"]) == (200, "not_started")
    started = await client.post("/api/whatsapp/sessions/phone_1/connect", headers=tenant.headers)
    assert started.status_code == 200, started.text
    assert started.json()["state"] in {"connecting", "closed"}
    status = (await client.get("/api/whatsapp/status", headers=tenant.headers)).json()
    assert (status["state"], status["connected"]) == ("disconnected", False)
    refused = await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "hi", "recipients": ["+972502345678"]},
        headers=tenant.headers,
    )
    assert refused.status_code == 503
    body = refused.json()
    assert body["error_code"] == "WHATSAPP_NOT_CONNECTED"
    assert any("\u0590" <= ch <= "\u05ff" for ch in body["message"])  # the Hebrew message
    assert await _broadcasts(ctx) == 0
    # The gateway knows the session now, and where to call back.
    async with httpx.AsyncClient() as direct:
        listed = (
            await direct.get(f"{gateway}/sessions", headers={"X-Gateway-Token": TOKEN})
        ).json()
    assert [s["id"] for s in listed["sessions"]] == ["phone_1"]
    logged_out = await client.post("/api/whatsapp/sessions/phone_1/logout", headers=tenant.headers)
    assert (logged_out.status_code, logged_out.json()["state"]) == (200, "logged_out")


async def test_a_gateway_that_hangs_fails_open_after_the_check_timeout(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """A gateway that accepts connections and never answers: the broadcast is accepted
    after the 5 s connection check (connection_check "unknown"), as the spec says."""
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(16)
        port = hanging.getsockname()[1]
        await _session(client, tenant, f"http://127.0.0.1:{port}")
        started = time.monotonic()
        response = await client.post(
            "/api/whatsapp/broadcasts",
            json={"message": "hi", "recipients": ["+972502345678"]},
            headers=tenant.headers,
        )
        waited = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert response.json()["connection_check"] == "unknown"
    assert waited >= ctx.settings.connection_check_timeout_s
    assert await _broadcasts(ctx) == 1
