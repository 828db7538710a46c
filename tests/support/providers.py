"""The provider instances of a test's context, by their concrete type."""

from __future__ import annotations

from typing import cast

from wabroadcast.context import AppContext
from wabroadcast.providers.simulator.provider import SimulatorProvider
from wabroadcast.providers.simulator.rules import KIND as SIMULATOR


def simulator_of(ctx: AppContext) -> SimulatorProvider:
    """The context's simulator, for tests that drive or patch it directly."""
    return cast(SimulatorProvider, ctx.providers.for_kind(SIMULATOR))
