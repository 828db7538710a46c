"""The simulator's scenario rows: how each session's simulated WhatsApp behaves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import table_of
from wabroadcast.providers.simulator.models import SimulatorScenario
from wabroadcast.providers.simulator.rules import Scenario, scenario_from_row


def scenario_columns() -> tuple[ColumnElement[Any], ...]:
    """The session id and the columns a Scenario is built from (``scenario_from_row``)."""
    table = table_of(SimulatorScenario)
    return (
        table.c.session_id,
        table.c.connected,
        table.c.status_delay_ms,
        table.c.latency_ms,
        table.c.fail_numbers,
        table.c.fail_rate,
        table.c.deliver_after_ms,
    )


class ScenarioRepository:
    """Scenario rows of the simulator's sessions."""

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

    async def scenarios(self, session_ids: Sequence[str]) -> dict[str, Scenario]:
        """The sessions' scenarios as they are now (not locked)."""
        result = await self.session.execute(
            select(*scenario_columns()).where(
                one_of(self.session, SimulatorScenario.session_id, session_ids)
            )
        )
        return {str(row.session_id): scenario_from_row(row) for row in result.all()}
