"""Group commit of send results: one transaction for what every slot finished meanwhile.

A slot's results are committed when its ``write`` returns, exactly as if it had
written them itself; if a grouped transaction fails, each slot's write is tried
again on its own, so only a write that fails by itself reports the error. A
slot gathers its results in a ``SlotResults`` and hands them over in batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.context import AppContext
from wabroadcast.db.group_commit import GroupCommit
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.results import ResultRepository
from wabroadcast.dispatch.repository.rows import Result
from wabroadcast.dispatch.tuning import Tuning

# What to do after results are written: cancel and finish broadcasts (Dispatcher.close_out).
CloseOut = Callable[[AsyncSession, set[int]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Write:
    results: Sequence[Result]
    release: tuple[str, int, int] | None


class ResultWriter:
    """Writes results and releases leases for all slots of one process, grouped."""

    def __init__(self, ctx: AppContext, close_out: CloseOut) -> None:
        self._ctx = ctx
        self._close_out = close_out
        self._group: GroupCommit[_Write, None] = GroupCommit(self._write, "result writer")

    async def write(
        self, results: Sequence[Result], *, release: tuple[str, int, int] | None = None
    ) -> None:
        """Record ``results`` (fenced by their epochs), then give up the lease ``release``
        (session, slot, epoch) if given; returns once that is committed."""
        if results or release is not None:
            await self._group.submit(_Write(results, release))

    def write_soon(self, results: Sequence[Result]) -> asyncio.Future[None]:
        """Record ``results`` without waiting: a future done once they are committed."""
        return self._group.submit_soon(_Write(results, None))

    async def _write(self, batch: Sequence[_Write]) -> list[None]:
        async with self._ctx.database.transaction() as db:
            results = [result for write in batch for result in write.results]
            if results:
                touched = await ResultRepository(db).record(results, self._ctx.clock.now())
                await self._close_out(db, touched)
            releases = [w.release for w in batch if w.release is not None]
            await LeaseRepository(db).release_slots(releases)
        return [None] * len(batch)


def failed(future: asyncio.Future[Any]) -> bool:
    """A done future that did not succeed."""
    return future.cancelled() or future.exception() is not None


class SlotResults:
    """One slot's results on their way to the writer: handed over in batches, never held
    long, and at most one batch on its way at a time while the slot sends."""

    def __init__(self, writer: ResultWriter, tuning: Tuning) -> None:
        self._writer = writer
        self._every = tuning.flush_every
        self._after_s = tuning.flush_after_s
        # Results not yet handed over (the slot appends to it directly), when some
        # last were, and those on their way to the database.
        self.pending: list[Result] = []
        self._handed_at = time.monotonic()
        self._flushing: list[asyncio.Future[None]] = []

    @property
    def full(self) -> bool:
        return len(self.pending) >= self._every

    def take_all(self) -> list[Result]:
        """The pending results, to be written another way (with a pause)."""
        pending, self.pending = self.pending, []
        return pending

    def add_now(self, result: Result) -> None:
        """A result that arrived during a call (never waits: called from the call)."""
        self.pending.append(result)
        self.hand_over_if_due()

    def hand_over_if_due(self, *, idle_for: float = 0.0) -> None:
        """Hand the pending results over if a batch is due, counting the ``idle_for``
        seconds the slot is about to wait, and none of this slot's is on its way (a
        failed one is raised by ``flushed`` instead)."""
        if any(not flushing.done() or failed(flushing) for flushing in self._flushing):
            return
        if self.full or time.monotonic() + idle_for - self._handed_at >= self._after_s:
            self.hand_over()

    def hand_over(self) -> None:
        """The pending results to the writer, without waiting for their commit."""
        if self.pending:
            # Committed ones are forgotten; failed ones kept for ``flushed`` to raise.
            self._flushing = [f for f in self._flushing if not f.done() or failed(f)]
            self._flushing.append(self._writer.write_soon(self.pending))
            self.pending = []
        self._handed_at = time.monotonic()

    async def flush(self) -> None:
        """Hand the pending results over and go on sending while they are committed;
        waits first for the earlier ones, so at most one batch is on its way."""
        if self.pending:
            await self.flushed()
            self.hand_over()

    async def flushed(self) -> None:
        """Wait until the results handed over are committed."""
        while self._flushing:
            await self._flushing.pop(0)
