"""Request dependencies: the app context and the authenticated tenant."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wabroadcast.context import AppContext
from wabroadcast.domain.errors import BroadcastNotFound, Unauthorized
from wabroadcast.tenants.service import TenantContext, authenticate

_bearer = HTTPBearer(auto_error=False, description="The tenant's API key.")


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Ctx = Annotated[AppContext, Depends(get_context)]


async def get_tenant(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TenantContext:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer API key")
    async with ctx.database.transaction() as session:
        tenant = await authenticate(session, credentials.credentials, ctx.clock.now())
    if tenant is None:
        raise Unauthorized("Invalid API key")
    # Counted per tenant, so a rotated key and its successor share one limit.
    await ctx.rate_limits.api_call(tenant.tenant_id, ctx.clock.now())
    return tenant


CurrentTenant = Annotated[TenantContext, Depends(get_tenant)]


async def require_metrics_token(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """When ``WABROADCAST_METRICS_TOKEN`` is set, the scraper must present it as a bearer token."""
    expected = ctx.settings.metrics_token
    if expected is None:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer metrics token")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("Invalid metrics token")


MetricsScraper = Depends(require_metrics_token)

# The largest id a broadcast can have (a signed 64-bit integer on every backend).
MAX_ID = 2**63 - 1


def broadcast_id_path(
    broadcast_id: Annotated[int, Path(description="The broadcast's id.", examples=[1])],
) -> int:
    """A broadcast id from the path; one no broadcast can have is simply not found."""
    if not 0 < broadcast_id <= MAX_ID:
        raise BroadcastNotFound("Broadcast not found", details={"broadcast_id": str(broadcast_id)})
    return broadcast_id


BroadcastId = Annotated[int, Depends(broadcast_id_path)]
