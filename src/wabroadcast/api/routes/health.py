"""Health probes for orchestrators and load balancers; no API key, no tenant data."""

from __future__ import annotations

from fastapi import APIRouter

from wabroadcast.api.deps import Ctx
from wabroadcast.api.routes import error_responses
from wabroadcast.domain.errors import NotReady
from wabroadcast.health import service
from wabroadcast.health.schemas import LiveOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=LiveOut,
    summary="Liveness: the process answers (the database is not asked)",
)
async def healthz() -> LiveOut:
    return service.liveness()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses=error_responses(NotReady),
    summary="Readiness: the database answers and its schema is at the migration head",
)
async def readyz(ctx: Ctx) -> ReadyOut:
    return await service.readiness(ctx)
