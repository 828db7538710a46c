"""Group commit: one transaction for everything many tasks asked for meanwhile.

A worker runs a thousand send slots; one transaction per slot for each claim
or batch of results would cost more than the sends themselves. Tasks submit
their item and wait; whatever arrives while a run is busy is handled by the
next run, together. When a grouped run fails, each of its items is run again
on its own, so only an item that fails by itself reports the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


@dataclass(slots=True)
class _Waiting(Generic[Item, Answer]):
    item: Item
    answer: asyncio.Future[Answer]


class GroupCommit(Generic[Item, Answer]):
    """Runs ``handle`` (one transaction, an answer per item in order) over batches."""

    def __init__(
        self, handle: Callable[[Sequence[Item]], Awaitable[Sequence[Answer]]], name: str
    ) -> None:
        self._handle = handle
        self._name = name
        self._waiting: list[_Waiting[Item, Answer]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Answer:
        """Hand ``item`` to the next run; its answer once that run has committed."""
        return await self.submit_soon(item)

    def submit_soon(self, item: Item) -> asyncio.Future[Answer]:
        """Hand ``item`` to the next run without waiting: its answer, as a future."""
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(item, answer))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_all(), name=self._name)
        return answer

    async def _run_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                answers = await self._handle([waiting.item for waiting in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0], exc)
                    continue
                for waiting in batch:
                    try:
                        (answer,) = await self._handle([waiting.item])
                    except Exception as own:
                        _fail(waiting, own)
                    else:
                        _answer(waiting, answer)
                continue
            for waiting, answer in zip(batch, answers, strict=True):
                _answer(waiting, answer)


def _answer(waiting: _Waiting[Item, Answer], answer: Answer) -> None:
    if not waiting.answer.done():
        waiting.answer.set_result(answer)


def _fail(waiting: _Waiting[Item, Answer], error: Exception) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(error)
