"""Which provider implementation serves a session, by the session's provider kind."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.engine import Database
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.providers import simulator
from wabroadcast.providers.simulator import SimulatorProvider, SimulatorRepository

KNOWN_PROVIDERS = frozenset({simulator.KIND})


def known_provider(kind: str) -> bool:
    return kind in KNOWN_PROVIDERS


async def on_session_created(session: AsyncSession, clock: Clock, row: WhatsAppSession) -> None:
    """Give a new session what its provider needs (the simulator: a default scenario)."""
    if row.provider == simulator.KIND:
        await SimulatorRepository(session).ensure(row.id, clock)


class Providers:
    """One instance per provider kind for this process."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.simulator = SimulatorProvider(database, clock)

    def for_kind(self, kind: str) -> SimulatorProvider:
        if kind == simulator.KIND:
            return self.simulator
        raise ValidationFailed(f"provider {kind!r} is not available", details={"provider": kind})
