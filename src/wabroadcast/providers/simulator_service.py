"""Reading and changing a session's simulated WhatsApp, as tests and demos do over HTTP."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wabroadcast.context import AppContext
from wabroadcast.domain.errors import SimulatorNotAvailable, ValidationFailed
from wabroadcast.providers import simulator
from wabroadcast.providers.simulator import Scenario, SimulatorRepository, scenario_from_row
from wabroadcast.tenants.service import TenantContext, resolve_session

E164_PATTERN = r"^\+\d{10,15}$"


class ScenarioOut(BaseModel):
    session_id: str
    connected: bool
    status_delay_ms: int
    latency_ms: int
    fail_numbers: dict[str, str]
    fail_rate: float
    deliver_after_ms: int | None


class ScenarioUpdate(BaseModel):
    """Only the fields given change; the rest keep their current value."""

    model_config = ConfigDict(extra="forbid")

    connected: bool | None = None
    status_delay_ms: int | None = Field(default=None, ge=0, le=600_000)
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)
    fail_numbers: dict[str, str] | None = Field(
        default=None, description="E.164 number -> error code, e.g. NOT_ON_WHATSAPP."
    )
    fail_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    deliver_after_ms: int | None = Field(
        default=None, ge=0, le=86_400_000, description="null = no receipts."
    )

    @field_validator("fail_numbers")
    @classmethod
    def _e164_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        for number, code in value.items():
            if not re.match(E164_PATTERN, number):
                raise ValueError(f"{number!r} is not an E.164 number")
            if not re.match(r"^[A-Z][A-Z0-9_]{0,63}$", code):
                raise ValueError(f"{code!r} is not an error code (A-Z, 0-9, _)")
        return value


def _out(session_id: str, scenario: Scenario) -> ScenarioOut:
    return ScenarioOut(
        session_id=session_id,
        connected=scenario.connected,
        status_delay_ms=scenario.status_delay_ms,
        latency_ms=scenario.latency_ms,
        fail_numbers=scenario.fail_numbers,
        fail_rate=scenario.fail_rate,
        deliver_after_ms=scenario.deliver_after_ms,
    )


async def get_scenario(
    ctx: AppContext, tenant: TenantContext, session_id: str | None
) -> ScenarioOut:
    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
        _require_simulator(info.provider, info.session_id)
        row = await SimulatorRepository(session).ensure(info.session_id, ctx.clock)
        return _out(info.session_id, scenario_from_row(row))


async def update_scenario(
    ctx: AppContext, tenant: TenantContext, session_id: str | None, update: ScenarioUpdate
) -> ScenarioOut:
    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
        _require_simulator(info.provider, info.session_id)
        row = await SimulatorRepository(session).ensure(info.session_id, ctx.clock)
        changes = update.model_dump(exclude_unset=True)
        for name, value in changes.items():
            if value is None and name != "deliver_after_ms":
                raise ValidationFailed(f"{name}: must not be null", details={"field": name})
            setattr(row, name, value)
        row.updated_at = ctx.clock.now()
        await session.flush()
        return _out(info.session_id, scenario_from_row(row))


def _require_simulator(provider: str, session_id: str) -> None:
    if provider != simulator.KIND:
        raise SimulatorNotAvailable(
            "This session does not use the simulator",
            details={"session_id": session_id, "provider": provider},
        )
