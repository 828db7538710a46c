"""What a send slot needs of its dispatcher: the few things every slot of a process shares.

The dispatcher (dispatch/dispatcher.py) is the one implementation; a slot
(dispatch/slot.py) sees it only through this protocol, as plain attributes
and method calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from wabroadcast.context import AppContext
from wabroadcast.dispatch.brake import ErrorRateBrake
from wabroadcast.dispatch.claims import ClaimBatcher
from wabroadcast.dispatch.outcome import OutcomeRules
from wabroadcast.dispatch.repository.rows import Result
from wabroadcast.dispatch.tuning import Tuning
from wabroadcast.dispatch.writer import ResultWriter
from wabroadcast.providers.base import SendResult

if TYPE_CHECKING:
    from wabroadcast.dispatch.slot import SlotRunner


class SlotHost(Protocol):
    ctx: AppContext
    tuning: Tuning
    rules: OutcomeRules
    lease_ttl: timedelta
    # Claims and result writes of every slot, each grouped into few transactions.
    writer: ResultWriter
    claimer: ClaimBatcher
    # Set when the worker stops: no new call starts.
    stopping: asyncio.Event
    # Broadcasts cancelled while slots held claimed recipients of theirs.
    cancelled: set[int]
    # Each session's latest sends, for the error-rate brake.
    brake: ErrorRateBrake

    def hold(self, slot: SlotRunner) -> None:
        """The slot holds its lease now: renew it with the others."""

    def let_go(self, slot: SlotRunner) -> None:
        """The slot is giving its lease up."""

    def count_claim(self) -> None:
        """The slot claimed a batch (callers watch the count to see progress)."""

    async def note_cancelled(self, slots: Sequence[SlotRunner]) -> None:
        """Look now which broadcasts of ``slots``' claimed recipients were cancelled."""

    async def renew_leases(self, slots: Sequence[SlotRunner]) -> None:
        """Renew the leases of ``slots`` now; a slot whose lease is gone is told (``lost``)."""

    async def pause_session(
        self, session_id: str, answer: SendResult, results: list[Result]
    ) -> None:
        """Write ``results`` and pause the session's broadcasts (an account-level error)."""

    async def brake_session(self, session_id: str, reason: str, results: list[Result]) -> None:
        """Write ``results`` and pause the session's broadcasts (too many recent sends
        failed for recipient reasons)."""
