"""Reading and changing a session's simulated WhatsApp, as tests and demos do over HTTP."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wabroadcast.context import AppContext
from wabroadcast.domain.errors import SimulatorNotAvailable
from wabroadcast.pagination import decode_cursor, page_cursor
from wabroadcast.providers.simulator import webhook
from wabroadcast.providers.simulator.repository.scenarios import ScenarioRepository
from wabroadcast.providers.simulator.repository.send_log import SendLogRepository
from wabroadcast.providers.simulator.rules import KIND, Scenario, scenario_from_row
from wabroadcast.sessions.service import resolve_session
from wabroadcast.tenants.service import TenantContext

E164 = Annotated[str, StringConstraints(pattern=r"^\+\d{10,15}$")]
ErrorCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]


class SimulatedInbound(BaseModel):
    """A message someone sends to the simulated number."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_phone: Annotated[str, StringConstraints(pattern=r"^\+?\d{6,15}$")] = Field(
        alias="from", description="The sender's number in E.164 (digits, optional +)."
    )
    text: Annotated[str, StringConstraints(max_length=4096)] | None = None


class SimulatedInboundOut(BaseModel):
    success: bool = True
    session_id: str
    message_id: str = Field(description="The id the simulated WhatsApp gave the message.")
    received_at: datetime


class ScenarioOut(BaseModel):
    session_id: str
    connected: bool
    status_delay_ms: int
    latency_ms: int
    fail_numbers: dict[str, str]
    fail_rate: float
    deliver_after_ms: int | None


class ScenarioUpdate(BaseModel):
    """Only the fields given change; absent fields, and null for any field but
    ``deliver_after_ms`` (where null means "no receipts"), keep their value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    connected: bool | None = None
    status_delay_ms: int | None = Field(default=None, ge=0, le=600_000)
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)
    fail_numbers: dict[E164, ErrorCode] | None = Field(
        default=None, description="E.164 number -> error code, e.g. NOT_ON_WHATSAPP."
    )
    fail_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    deliver_after_ms: int | None = Field(
        default=None, ge=0, le=86_400_000, description="null = no receipts."
    )


class SimulatedSend(BaseModel):
    send_id: int
    phone: str
    client_message_id: str
    provider_message_id: str
    repeat: bool = Field(description="A repeated client message id: not delivered again.")
    text: str | None = Field(description="The text this send asked WhatsApp to deliver.")
    outcome: str | None = Field(
        description=(
            "null while the send is in flight. One whose caller died before logging its "
            "end is ended as sent (accepted) 10 s after WhatsApp answered it."
        )
    )
    error_code: str | None
    started_at: datetime
    finished_at: datetime | None
    deliver_at: datetime | None
    receipt_sent_at: datetime | None


class SimulatedSendsPage(BaseModel):
    items: list[SimulatedSend]
    next_cursor: str | None
    in_flight_high_water_mark: int = Field(
        description=(
            "The most sends this session ever had in flight at once; a send whose caller "
            "died counts until 2 s after WhatsApp answered it."
        )
    )


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
        row = await ScenarioRepository(session).ensure(info.session_id, ctx.clock)
        return _out(info.session_id, scenario_from_row(row))


async def update_scenario(
    ctx: AppContext, tenant: TenantContext, session_id: str | None, update: ScenarioUpdate
) -> ScenarioOut:
    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
        _require_simulator(info.provider, info.session_id)
        row = await ScenarioRepository(session).ensure(info.session_id, ctx.clock)
        changes = update.model_dump(exclude_unset=True)
        for name, value in changes.items():
            if value is not None or name == "deliver_after_ms":
                setattr(row, name, value)
        row.updated_at = ctx.clock.now()
        await session.flush()
        return _out(info.session_id, scenario_from_row(row))


async def list_sends(
    ctx: AppContext,
    tenant: TenantContext,
    session_id: str | None,
    *,
    cursor: str | None,
    limit: int,
) -> SimulatedSendsPage:
    """Every send the simulated WhatsApp received, oldest first: proof of "sent once"."""
    after_id = decode_cursor(cursor)
    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
        _require_simulator(info.provider, info.session_id)
        scenario = await ScenarioRepository(session).ensure(info.session_id, ctx.clock)
        rows = await SendLogRepository(session).sends(
            info.session_id, after_id=after_id, limit=limit
        )
        items = [
            SimulatedSend(
                send_id=r.id,
                phone=r.phone,
                client_message_id=r.client_message_id,
                provider_message_id=r.provider_message_id,
                repeat=r.repeat,
                text=r.text,
                outcome=r.outcome,
                error_code=r.error_code,
                started_at=r.started_at,
                finished_at=r.finished_at,
                deliver_at=r.deliver_at,
                receipt_sent_at=r.receipt_sent_at,
            )
            for r in rows
        ]
        return SimulatedSendsPage(
            items=items,
            next_cursor=page_cursor([r.id for r in rows], limit),
            in_flight_high_water_mark=scenario.in_flight_high_water_mark,
        )


async def deliver_inbound(
    ctx: AppContext, tenant: TenantContext, session_id: str | None, message: SimulatedInbound
) -> SimulatedInboundOut:
    """Deliver a message to the session's number as a provider would: a signed call to
    the simulator's webhook, through ``receipts.webhooks.handle_webhook`` like any
    provider's (stored, and a stop word opts its sender out)."""
    from wabroadcast.receipts.webhooks import handle_webhook

    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
    _require_simulator(info.provider, info.session_id)
    message_id = f"sim-in-{secrets.token_hex(8)}"
    now = ctx.clock.now()
    body = webhook.inbound_body(message_id, message.from_phone, message.text, now)
    headers = {
        webhook.SESSION_HEADER: info.session_id,
        webhook.SIGNATURE_HEADER: webhook.sign_simulator_webhook(info.webhook_secret, body),
    }
    await handle_webhook(ctx, KIND, headers, body)
    return SimulatedInboundOut(session_id=info.session_id, message_id=message_id, received_at=now)


def _require_simulator(provider: str, session_id: str) -> None:
    if provider != KIND:
        raise SimulatorNotAvailable(
            "This session does not use the simulator",
            details={"session_id": session_id, "provider": provider},
        )
