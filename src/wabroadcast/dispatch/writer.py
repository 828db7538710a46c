"""Group commit of send results: one transaction for what every slot finished meanwhile.

A worker may run a thousand send slots; one transaction per slot for each
batch of results (and one more for each lease it gives up) would cost more than
the sends themselves. Slots hand their results here and wait: whatever arrives
while a transaction runs is written by the next one, together. A slot's
results are committed when its ``write`` returns, exactly as if it had written
them itself. When a grouped transaction fails, each write is tried again on
its own, so only a write that fails by itself reports the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from wabroadcast.context import AppContext
from wabroadcast.dispatch.repository import DispatchRepository, Result

# What to do after results are written: cancel and finish broadcasts (Dispatcher.close_out).
CloseOut = Callable[[DispatchRepository, set[int]], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    results: Sequence[Result]
    release: tuple[str, int, int] | None
    done: asyncio.Future[None]


def _settle(pending: _Pending, error: Exception | None) -> None:
    if pending.done.done():
        return
    if error is None:
        pending.done.set_result(None)
    else:
        pending.done.set_exception(error)


class ResultWriter:
    """Writes results and releases leases for all slots of one process, grouped."""

    def __init__(self, ctx: AppContext, close_out: CloseOut) -> None:
        self._ctx = ctx
        self._close_out = close_out
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(
        self, results: Sequence[Result], *, release: tuple[str, int, int] | None = None
    ) -> None:
        """Record ``results`` (fenced by their epochs), then give up the lease ``release``
        (session, slot, epoch) if given; returns once that is committed."""
        if not results and release is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(results, release, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="result writer")
        await done

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    continue
                # One slot's bad result must not cost the others theirs: each
                # write again on its own, so only the one that fails fails.
                for pending in batch:
                    try:
                        await self._write([pending])
                    except Exception as own:
                        _settle(pending, own)
                    else:
                        _settle(pending, None)
                continue
            for pending in batch:
                _settle(pending, None)

    async def _write(self, batch: Sequence[_Pending]) -> None:
        async with self._ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            results = [result for pending in batch for result in pending.results]
            if results:
                touched = await repo.record(results, self._ctx.clock.now())
                await self._close_out(repo, touched)
            await repo.release_slots([p.release for p in batch if p.release is not None])
