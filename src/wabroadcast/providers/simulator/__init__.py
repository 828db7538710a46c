"""A simulated WhatsApp: the default provider for demos, tests and benchmarks.

It is a real implementation of the provider protocol, not a mock: its scenario
(connected, latencies, failing numbers, receipt delays) and the log of every
send live in the database, so the API process and every worker process see the
same WhatsApp, and tests control it over HTTP exactly as an operator would.
Split along its seams: ``rules`` (pure), ``models`` and ``repository`` (its
tables), ``send_log``, ``provider``, ``webhook`` (signed receipts), ``receipts``
(its receipt pump), ``service`` and ``routes`` (its scenario over HTTP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.providers.base import Pace, Provider
from wabroadcast.providers.common import keyed_by_session_id
from wabroadcast.providers.plugin import ProviderDeps, ProviderPlugin, WebhookSpec

# Its tables join the application's metadata with the package.
from wabroadcast.providers.simulator import models as models
from wabroadcast.providers.simulator import webhook
from wabroadcast.providers.simulator.rules import KIND

if TYPE_CHECKING:
    from fastapi import APIRouter

    from wabroadcast.context import AppContext


class SimulatorConfig(BaseModel):
    """The simulator takes no config: its scenario is set through its own API."""

    model_config = ConfigDict(extra="forbid")


def _build(deps: ProviderDeps) -> Provider:
    from wabroadcast.providers.simulator.provider import SimulatorProvider

    return SimulatorProvider(deps.database, deps.clock)


async def _on_session_created(session: AsyncSession, clock: Clock, session_id: str) -> None:
    """A new simulator session starts with the default scenario (connected)."""
    from wabroadcast.providers.simulator.repository.scenarios import ScenarioRepository

    await ScenarioRepository(session).ensure(session_id, clock)


def _router() -> APIRouter:
    from wabroadcast.providers.simulator.routes import router

    return router


async def _deliver_receipts(ctx: AppContext) -> int:
    from wabroadcast.providers.simulator.receipts import deliver_due_receipts

    return await deliver_due_receipts(ctx)


PLUGIN = ProviderPlugin(
    kind=KIND,
    title="Simulator",
    build=_build,
    config_model=SimulatorConfig,
    secret_fields=frozenset(),
    # Slow enough for the demo to visibly progress.
    default_pace=Pace(rate_per_minute=120, jitter_ms=250),
    default_max_concurrency=1,
    webhook_key=keyed_by_session_id,
    webhook=WebhookSpec(
        routing_keys=webhook.routing_keys,
        parse=webhook.parse,
        headers={
            webhook.SESSION_HEADER: "The WhatsApp session the receipts belong to.",
            webhook.SIGNATURE_HEADER: "`sha256=<hex HMAC-SHA256 of the raw body, keyed with "
            "the session's webhook secret>`.",
        },
        body_model=webhook.SimulatorWebhookBody,
        inbound=webhook.inbound,
    ),
    background=_deliver_receipts,
    router=_router,
    on_session_created=_on_session_created,
    summary="A WhatsApp of its own, for trying wabroadcast out and for tests: nothing leaves.",
)
