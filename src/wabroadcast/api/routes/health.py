"""Health probes for orchestrators and load balancers; no API key, no tenant data."""

from __future__ import annotations

from fastapi import APIRouter

from wabroadcast.api.deps import Ctx
from wabroadcast.api.schemas import ErrorEnvelope
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
    responses={
        503: {
            "model": ErrorEnvelope,
            "description": (
                "NOT_READY: the database is unreachable or slow, or its schema is not at "
                "this version's migration head"
            ),
        }
    },
    summary="Readiness: the database answers and its schema is at the migration head",
)
async def readyz(ctx: Ctx) -> ReadyOut:
    return await service.readiness(ctx)
