"""A simulated WhatsApp: the default provider for demos, tests and benchmarks.

It is a real implementation of the provider protocol, not a mock: its scenario
(connected, latencies, failing numbers, receipt delays) lives in the database
so the API process and every worker process see the same WhatsApp, and tests
control it over HTTP exactly as an operator would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.engine import Database
from wabroadcast.db.models import SimulatorScenario
from wabroadcast.providers.base import ConnectionState, ConnectionStatus, SessionRef

KIND = "simulator"
DEFAULT_DELIVER_AFTER_MS = 2000


@dataclass(slots=True)
class Scenario:
    """What the simulated WhatsApp of one session does."""

    connected: bool = True
    status_delay_ms: int = 0
    latency_ms: int = 0
    fail_numbers: dict[str, str] = field(default_factory=dict)
    fail_rate: float = 0.0
    deliver_after_ms: int | None = DEFAULT_DELIVER_AFTER_MS


def scenario_from_row(row: SimulatorScenario) -> Scenario:
    return Scenario(
        connected=row.connected,
        status_delay_ms=row.status_delay_ms,
        latency_ms=row.latency_ms,
        fail_numbers=dict(row.fail_numbers),
        fail_rate=row.fail_rate,
        deliver_after_ms=row.deliver_after_ms,
    )


class SimulatorRepository:
    """All SQL of the simulator's own tables."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, session_id: str) -> SimulatorScenario | None:
        return await self.session.get(SimulatorScenario, session_id)

    async def ensure(self, session_id: str, clock: Clock) -> SimulatorScenario:
        row = await self.get(session_id)
        if row is None:
            defaults = Scenario()
            row = SimulatorScenario(
                session_id=session_id,
                connected=defaults.connected,
                status_delay_ms=defaults.status_delay_ms,
                latency_ms=defaults.latency_ms,
                fail_numbers=defaults.fail_numbers,
                fail_rate=defaults.fail_rate,
                deliver_after_ms=defaults.deliver_after_ms,
                updated_at=clock.now(),
            )
            self.session.add(row)
            await self.session.flush()
        return row


class SimulatorProvider:
    """The simulated gateway; reads its scenario from the database on every call."""

    kind = KIND
    supports_client_message_id = True

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def scenario(self, session_id: str) -> Scenario:
        async with self._database.transaction() as session:
            row = await SimulatorRepository(session).get(session_id)
        return Scenario() if row is None else scenario_from_row(row)

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        scenario = await self.scenario(session.session_id)
        if scenario.status_delay_ms:
            await asyncio.sleep(scenario.status_delay_ms / 1000)
        if scenario.connected:
            return ConnectionStatus(ConnectionState.CONNECTED)
        return ConnectionStatus(ConnectionState.DISCONNECTED, "simulator scenario: disconnected")

    def describe(self) -> Mapping[str, object]:
        return {"kind": KIND}
