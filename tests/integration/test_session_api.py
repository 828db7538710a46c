"""Sessions through the API: add, list, show, change, delete; secrets write-only and encrypted."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppSession

TOKEN = "EAAG-access-token-that-is-long-1234"
APP_SECRET = "app-secret-of-the-meta-app-9876"
VERIFY = "verify-token-of-this-number-5555"


def cloud_config(phone_number_id: str = "100000000000001") -> dict[str, str]:
    return {
        "phone_number_id": phone_number_id,
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
        "graph_base_url": "http://127.0.0.1:9",
    }


async def _add_cloud(
    client: httpx.AsyncClient, tenant: TenantFixture, **extra: object
) -> httpx.Response:
    body: dict[str, object] = {"provider": "cloud_api", "config": cloud_config(), **extra}
    return await client.post("/api/whatsapp/sessions", json=body, headers=tenant.headers)


async def _row(ctx: AppContext, session_id: str) -> WhatsAppSession:
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, session_id)
        assert row is not None
        return row


async def test_a_session_is_added_with_its_secrets_masked_and_encrypted(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await _add_cloud(client, tenant, session_id="shop_main")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["session_id"] == "shop_main"
    assert body["provider"] == "cloud_api"
    assert body["default"] is False  # the tenant's simulator session stays the default
    assert body["config"]["phone_number_id"] == "100000000000001"
    assert body["config"]["access_token"] == "…1234"
    assert body["config"]["app_secret"] == "…9876"
    assert body["config"]["api_version"].startswith("v")
    assert body["webhook_url"].endswith("/api/whatsapp/webhooks/cloud_api")
    assert body["webhook_url_warning"]  # WABROADCAST_PUBLIC_URL is not set in tests
    assert body["max_concurrency"] == 16
    for secret in (TOKEN, APP_SECRET, VERIFY):
        assert secret not in response.text
    row = await _row(ctx, "shop_main")
    stored = json.dumps(row.config) + (row.secret_config or "")
    for secret in (TOKEN, APP_SECRET, VERIFY):
        assert secret not in stored
    assert ctx.secrets.decrypt(row.secret_config or "")["access_token"] == TOKEN
    assert row.webhook_key == "100000000000001"

    listed = (await client.get("/api/whatsapp/sessions", headers=tenant.headers)).json()
    assert [item["session_id"] for item in listed["items"]] == [tenant.session_id, "shop_main"]
    shown = await client.get("/api/whatsapp/sessions/shop_main", headers=tenant.headers)
    assert shown.json() == body


async def test_bad_config_is_a_422_naming_the_field_without_echoing_secrets(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    config = {**cloud_config(), "phone_number_id": "not-digits", "access_token": ""}
    response = await client.post(
        "/api/whatsapp/sessions",
        json={"provider": "cloud_api", "config": {**config, "app_secret": 12345}},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    fields = {error["field"] for error in body["details"]["errors"]}
    assert {"config.phone_number_id", "config.access_token"} <= fields
    assert APP_SECRET not in response.text
    assert VERIFY not in response.text
    assert "12345" not in response.text

    unknown = await client.post(
        "/api/whatsapp/sessions",
        json={"provider": "carrier_pigeon", "config": {}},
        headers=tenant.headers,
    )
    assert unknown.status_code == 422
    assert unknown.json()["details"]["valid"] == [
        "simulator",
        "cloud_api",
        "baileys",
        "evolution",
        "waha",
    ]
    assert "valid: simulator, cloud_api, baileys, evolution, waha" in unknown.json()["message"]


async def test_ids_are_unique_and_a_number_has_one_session(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    assert (await _add_cloud(client, tenant, session_id="a")).status_code == 201
    again = await client.post(
        "/api/whatsapp/sessions",
        json={"session_id": "a", "provider": "simulator"},
        headers=tenant.headers,
    )
    assert (again.status_code, again.json()["error_code"]) == (409, "SESSION_EXISTS")
    other = await make_tenant(ctx, "Other")
    same_number = await _add_cloud(client, other)
    assert (same_number.status_code, same_number.json()["error_code"]) == (
        409,
        "WEBHOOK_KEY_IN_USE",
    )
    bad_id = await client.post(
        "/api/whatsapp/sessions",
        json={"session_id": "has space", "provider": "simulator"},
        headers=tenant.headers,
    )
    assert bad_id.status_code == 422
    generated = await client.post(
        "/api/whatsapp/sessions", json={"provider": "simulator"}, headers=tenant.headers
    )
    assert generated.json()["session_id"].startswith(f"business_{tenant.tenant_id}_")


async def test_patch_keeps_secrets_left_out_and_can_make_a_session_the_default(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await _add_cloud(client, tenant, session_id="shop")
    response = await client.patch(
        "/api/whatsapp/sessions/shop",
        json={"config": {"api_version": "v24.0"}, "default": True, "max_concurrency": 4},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["config"]["api_version"], body["default"], body["max_concurrency"]) == (
        "v24.0",
        True,
        4,
    )
    row = await _row(ctx, "shop")
    assert ctx.secrets.decrypt(row.secret_config or "")["access_token"] == TOKEN
    assert (await _row(ctx, tenant.session_id)).is_default is False
    rotated = await client.patch(
        "/api/whatsapp/sessions/shop",
        json={"config": {"access_token": "a-brand-new-token-abcd"}},
        headers=tenant.headers,
    )
    assert rotated.json()["config"]["access_token"] == "…abcd"
    row = await _row(ctx, "shop")
    assert ctx.secrets.decrypt(row.secret_config or "")["access_token"] == "a-brand-new-token-abcd"
    missing = await client.patch(
        "/api/whatsapp/sessions/nope", json={"max_concurrency": 2}, headers=tenant.headers
    )
    assert (missing.status_code, missing.json()["error_code"]) == (404, "SESSION_NOT_FOUND")


async def test_delete_is_refused_while_a_broadcast_is_active_and_keeps_history(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    second = await client.post(
        "/api/whatsapp/sessions",
        json={"session_id": "second", "provider": "simulator"},
        headers=tenant.headers,
    )
    assert second.status_code == 201
    posted = await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "hi", "recipients": ["+972502345678"], "session_id": "second"},
        headers=tenant.headers,
    )
    assert posted.status_code == 202, posted.text
    broadcast_id = posted.json()["broadcast_id"]
    refused = await client.delete("/api/whatsapp/sessions/second", headers=tenant.headers)
    assert (refused.status_code, refused.json()["error_code"]) == (409, "SESSION_IN_USE")
    await client.post(f"/api/whatsapp/broadcasts/{broadcast_id}/cancel", headers=tenant.headers)
    deleted = await client.delete("/api/whatsapp/sessions/second", headers=tenant.headers)
    assert deleted.status_code == 204
    gone = await client.get("/api/whatsapp/sessions/second", headers=tenant.headers)
    assert gone.status_code == 404
    async with ctx.database.transaction() as db:
        kept = (
            await db.execute(
                select(WhatsAppBroadcast.status).where(WhatsAppBroadcast.id == broadcast_id)
            )
        ).scalar_one()
    assert kept == "cancelled"
    shown = await client.get(f"/api/whatsapp/broadcasts/{broadcast_id}", headers=tenant.headers)
    assert shown.status_code == 200
    reused = await client.post(
        "/api/whatsapp/sessions",
        json={"session_id": "second", "provider": "simulator"},
        headers=tenant.headers,
    )
    assert reused.status_code == 409


async def test_deleting_the_default_makes_the_oldest_remaining_one_the_default(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    await client.post(
        "/api/whatsapp/sessions",
        json={"session_id": "later", "provider": "simulator"},
        headers=tenant.headers,
    )
    deleted = await client.delete(
        f"/api/whatsapp/sessions/{tenant.session_id}", headers=tenant.headers
    )
    assert deleted.status_code == 204
    later = (await client.get("/api/whatsapp/sessions/later", headers=tenant.headers)).json()
    assert later["default"] is True
    status = (await client.get("/api/whatsapp/status", headers=tenant.headers)).json()
    assert status["session_id"] == "later"


async def test_sessions_are_the_tenants_own(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, "Other")
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, f"/api/whatsapp/sessions/{tenant.session_id}", headers=other.headers
        )
        assert response.status_code == 404
    status = await client.get(
        f"/api/whatsapp/sessions/{tenant.session_id}/status", headers=other.headers
    )
    assert status.status_code == 404
    own = await client.get(
        f"/api/whatsapp/sessions/{tenant.session_id}/status", headers=tenant.headers
    )
    assert (own.status_code, own.json()["state"]) == (200, "connected")


async def test_secrets_the_key_cannot_read_refuse_sending_without_an_error_500(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """The key changed since the secrets were stored: the session shows them as set but
    unknown, a broadcast on it is refused as not connected, and a worker sends nothing."""
    from wabroadcast.crypto import SecretBox, new_key
    from wabroadcast.dispatch.dispatcher import Dispatcher

    await _add_cloud(client, tenant, session_id="shop", default=True)
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, "shop")
        assert row is not None
        row.secret_config = SecretBox(new_key()).encrypt({"access_token": TOKEN})
    shown = await client.get("/api/whatsapp/sessions/shop", headers=tenant.headers)
    assert shown.status_code == 200
    assert shown.json()["config"]["access_token"] == "…"
    refused = await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "hi", "recipients": ["+972502345678"]},
        headers=tenant.headers,
    )
    assert (refused.status_code, refused.json()["error_code"]) == (503, "WHATSAPP_NOT_CONNECTED")
    status = (await client.get("/api/whatsapp/sessions/shop/status", headers=tenant.headers)).json()
    assert status["state"] == "unknown"
    assert "decrypt" in status["detail"]
    # A broadcast queued before the key changed waits, queued, instead of failing.
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, "shop")
        assert row is not None
        good = row.secret_config
        row.secret_config = ctx.secrets.encrypt(
            {"access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY}
        )
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, "shop")
        assert row is not None
        row.rate_per_minute = 0
    accepted = await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "hi", "recipients": ["+972502345678"], "allow_duplicate": True},
        headers=tenant.headers,
    )
    # The graph_base_url refuses connections: the check cannot say, so it is accepted.
    assert accepted.status_code == 202, accepted.text
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, "shop")
        assert row is not None
        row.secret_config = good
    # Every pass claims the recipient and puts it back: never idle, never sent.
    with pytest.raises(RuntimeError, match="idle"):
        await Dispatcher(ctx, worker_id="w").run_until_idle(max_rounds=3)
    recipients = (
        await client.get(
            f"/api/whatsapp/broadcasts/{accepted.json()['broadcast_id']}/recipients",
            headers=tenant.headers,
        )
    ).json()["items"]
    assert [(r["status"], r["attempts"]) for r in recipients] == [("queued", 0)]


async def test_a_number_taken_between_the_check_and_the_insert_is_a_409(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two requests for the same number at once: the unique index decides, not a 500."""
    from wabroadcast.sessions import service

    assert (await _add_cloud(client, tenant, session_id="first")).status_code == 201

    async def nobody_has_it(*args: object) -> None:
        return None

    monkeypatch.setattr(service, "_ensure_webhook_key_free", nobody_has_it)
    second = await _add_cloud(client, tenant, session_id="second")
    assert (second.status_code, second.json()["error_code"]) == (409, "SESSION_EXISTS")
    listed = (await client.get("/api/whatsapp/sessions", headers=tenant.headers)).json()
    assert [s["session_id"] for s in listed["items"]] == [tenant.session_id, "first"]
