"""The simulated WhatsApp over HTTP: its scenario and its send log, per simulator session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.api.routes import tenant_errors
from wabroadcast.domain.errors import PayloadTooLarge, SessionNotFound, SimulatorNotAvailable
from wabroadcast.providers.simulator import service as simulator_service
from wabroadcast.providers.simulator.service import (
    ScenarioOut,
    ScenarioUpdate,
    SimulatedInbound,
    SimulatedInboundOut,
    SimulatedSendsPage,
)

router = APIRouter(prefix="/api/whatsapp", tags=["simulator"])

SessionQuery = Annotated[
    str | None, Query(max_length=64, description="Defaults to the tenant's default session.")
]


@router.get(
    "/simulator",
    response_model=ScenarioOut,
    responses=tenant_errors(SessionNotFound, SimulatorNotAvailable),
    tags=["simulator"],
    summary="The simulated WhatsApp's scenario (simulator sessions only)",
)
async def get_simulator(
    ctx: Ctx, tenant: CurrentTenant, session_id: SessionQuery = None
) -> ScenarioOut:
    return await simulator_service.get_scenario(ctx, tenant, session_id)


@router.put(
    "/simulator",
    response_model=ScenarioOut,
    responses=tenant_errors(PayloadTooLarge, SessionNotFound, SimulatorNotAvailable),
    tags=["simulator"],
    summary="Change the simulated WhatsApp's scenario; unset fields keep their value",
)
async def put_simulator(
    update: ScenarioUpdate, ctx: Ctx, tenant: CurrentTenant, session_id: SessionQuery = None
) -> ScenarioOut:
    return await simulator_service.update_scenario(ctx, tenant, session_id, update)


@router.get(
    "/simulator/sends",
    response_model=SimulatedSendsPage,
    responses=tenant_errors(SessionNotFound, SimulatorNotAvailable),
    tags=["simulator"],
    summary="Every send the simulated WhatsApp received, and its in-flight high-water mark",
)
async def simulator_sends(
    ctx: Ctx,
    tenant: CurrentTenant,
    session_id: SessionQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> SimulatedSendsPage:
    return await simulator_service.list_sends(ctx, tenant, session_id, cursor=cursor, limit=limit)


@router.post(
    "/simulator/inbound",
    response_model=SimulatedInboundOut,
    responses=tenant_errors(SessionNotFound, SimulatorNotAvailable),
    tags=["simulator"],
    summary="Someone sends a message to the simulated number (delivered as a webhook)",
)
async def simulator_inbound(
    message: SimulatedInbound, ctx: Ctx, tenant: CurrentTenant, session_id: SessionQuery = None
) -> SimulatedInboundOut:
    return await simulator_service.deliver_inbound(ctx, tenant, session_id, message)
