"""Group commit of send results: one transaction for what every slot finished meanwhile.

A slot's results are committed when its ``write`` returns, exactly as if it had
written them itself; if a grouped transaction fails, each slot's write is tried
again on its own, so only a write that fails by itself reports the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from wabroadcast.context import AppContext
from wabroadcast.db.group_commit import GroupCommit
from wabroadcast.dispatch.repository import DispatchRepository, Result

# What to do after results are written: cancel and finish broadcasts (Dispatcher.close_out).
CloseOut = Callable[[DispatchRepository, set[int]], Awaitable[None]]


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
            repo = DispatchRepository(db)
            results = [result for write in batch for result in write.results]
            if results:
                touched = await repo.record(results, self._ctx.clock.now())
                await self._close_out(repo, touched)
            await repo.release_slots([w.release for w in batch if w.release is not None])
        return [None] * len(batch)
