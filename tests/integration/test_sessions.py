"""GET /api/whatsapp/status and the simulator's scenario over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppSession


async def test_status_reports_connection_and_settings(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    body = (await client.get("/api/whatsapp/status", headers=tenant.headers)).json()
    assert body["session_id"] == tenant.session_id
    assert body["provider"] == "simulator"
    assert (body["state"], body["connected"]) == ("connected", True)
    assert body["max_concurrency"] == 1
    assert "rate_per_minute" in body
    assert "jitter_ms" in body
    await client.put("/api/whatsapp/simulator", json={"connected": False}, headers=tenant.headers)
    body = (await client.get("/api/whatsapp/status", headers=tenant.headers)).json()
    assert (body["state"], body["connected"]) == ("disconnected", False)


async def test_simulator_scenario_round_trips_and_keeps_unset_fields(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    initial = (await client.get("/api/whatsapp/simulator", headers=tenant.headers)).json()
    assert initial["connected"] is True
    assert initial["fail_numbers"] == {}
    changed = await client.put(
        "/api/whatsapp/simulator",
        json={
            "latency_ms": 100,
            "fail_numbers": {"+972502345678": "NOT_ON_WHATSAPP"},
            "fail_rate": 0.1,
            "deliver_after_ms": None,
        },
        headers=tenant.headers,
    )
    assert changed.status_code == 200
    again = (await client.get("/api/whatsapp/simulator", headers=tenant.headers)).json()
    assert again == {
        **initial,
        "latency_ms": 100,
        "fail_numbers": {"+972502345678": "NOT_ON_WHATSAPP"},
        "fail_rate": 0.1,
        "deliver_after_ms": None,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"fail_rate": 1.5},
        {"latency_ms": -1},
        {"fail_numbers": {"0502345678": "NOT_ON_WHATSAPP"}},
        {"fail_numbers": {"+972502345678": "lower case"}},
        {"unknown_field": 1},
    ],
)
async def test_bad_scenarios_are_422(
    client: httpx.AsyncClient, tenant: TenantFixture, body: dict[str, object]
) -> None:
    response = await client.put("/api/whatsapp/simulator", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_null_leaves_a_field_unchanged_except_deliver_after_ms(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    await client.put(
        "/api/whatsapp/simulator",
        json={"connected": False, "latency_ms": 7},
        headers=tenant.headers,
    )
    body = (
        await client.put(
            "/api/whatsapp/simulator",
            json={"connected": None, "latency_ms": None, "deliver_after_ms": None},
            headers=tenant.headers,
        )
    ).json()
    assert (body["connected"], body["latency_ms"], body["deliver_after_ms"]) == (False, 7, None)


async def test_simulator_is_404_for_sessions_on_another_provider(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    async with ctx.database.transaction() as session:
        session.add(
            WhatsAppSession(
                id="gateway_1",
                tenant_id=tenant.tenant_id,
                provider="baileys",
                config={},
                is_default=False,
                max_concurrency=1,
                webhook_secret="s",
                created_at=ctx.clock.now(),
            )
        )
    for method in ("GET", "PUT"):
        response = await client.request(
            method,
            "/api/whatsapp/simulator",
            params={"session_id": "gateway_1"},
            json={} if method == "PUT" else None,
            headers=tenant.headers,
        )
        assert response.status_code == 404
        assert response.json()["error_code"] == "SIMULATOR_NOT_AVAILABLE"


async def test_other_tenants_simulator_is_404(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    response = await client.put(
        "/api/whatsapp/simulator",
        params={"session_id": other.session_id},
        json={"connected": False},
        headers=tenant.headers,
    )
    assert response.status_code == 404
    assert response.json()["error_code"] == "SESSION_NOT_FOUND"
    theirs = (await client.get("/api/whatsapp/simulator", headers=other.headers)).json()
    assert theirs["connected"] is True
