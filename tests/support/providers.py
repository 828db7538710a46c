"""The provider instances of a test's context, by their concrete type, and sessions of
real providers added as a client adds them."""

from __future__ import annotations

from typing import Any, cast

import httpx

from tests.support.tenants import TenantFixture
from wabroadcast.context import AppContext
from wabroadcast.providers.simulator.provider import SimulatorProvider
from wabroadcast.providers.simulator.rules import KIND as SIMULATOR


def simulator_of(ctx: AppContext) -> SimulatorProvider:
    """The context's simulator, for tests that drive or patch it directly."""
    return cast(SimulatorProvider, ctx.providers.for_kind(SIMULATOR))


async def add_session(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    session_id: str,
    provider: str,
    config: dict[str, Any],
    *,
    default: bool = False,
) -> dict[str, Any]:
    """Add a session through the API (201 asserted); the created session."""
    body: dict[str, Any] = {"session_id": session_id, "provider": provider, "config": config}
    if default:
        body["default"] = True
    response = await client.post("/api/whatsapp/sessions", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
