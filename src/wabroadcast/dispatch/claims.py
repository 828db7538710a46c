"""Group commit of claims: the next batch of every slot that asks meanwhile, in one transaction.

A slot that has sent its batch asks here for the next one. With a thousand
sessions sending, a transaction per ask would cost more than the sends; asks
that arrive while a claim transaction runs are served together by the next,
with one claim statement per round (a session's second slot, if it asks at
the same time, is served in the next round of the same transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wabroadcast.context import AppContext
from wabroadcast.db.group_commit import GroupCommit
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch.repository import Claimed, ClaimRequest, DispatchRepository

# How many recipients a slot of this session claims, given its measured seconds per send.
ClaimLimit = Callable[[WhatsAppSession, float | None], int]


@dataclass(frozen=True, slots=True)
class _Ask:
    session_id: str
    slot: int
    epoch: int
    seconds_per_send: float | None


@dataclass(frozen=True, slots=True)
class NextBatch:
    """What a slot claimed: the session as read now, the recipients and the limit asked."""

    row: WhatsAppSession
    claimed: list[Claimed]
    limit: int


class ClaimBatcher:
    """Claims the next batch for many slots of one process at once."""

    def __init__(self, ctx: AppContext, holder: str, claim_limit: ClaimLimit) -> None:
        self._ctx = ctx
        self._holder = holder
        self._claim_limit = claim_limit
        self._group: GroupCommit[_Ask, NextBatch | None] = GroupCommit(self._claim, "claims")

    async def next_batch(
        self, session_id: str, slot: int, epoch: int, seconds_per_send: float | None
    ) -> NextBatch | None:
        """The slot's next batch, committed as ``sending`` under ``epoch``; None when the
        slot must stop (its session is gone or no longer has that many slots)."""
        return await self._group.submit(_Ask(session_id, slot, epoch, seconds_per_send))

    async def _claim(self, asks: Sequence[_Ask]) -> list[NextBatch | None]:
        answers: list[NextBatch | None] = [None] * len(asks)
        async with self._ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            rows = {
                row.id: row for row in await repo.get_sessions(sorted({a.session_id for a in asks}))
            }
            waiting = [
                (n, ask)
                for n, ask in enumerate(asks)
                if ask.session_id in rows and ask.slot < rows[ask.session_id].max_concurrency
            ]
            while waiting:
                this_round: dict[str, tuple[int, _Ask]] = {}
                later: list[tuple[int, _Ask]] = []
                for n, ask in waiting:
                    if ask.session_id in this_round:
                        later.append((n, ask))
                    else:
                        this_round[ask.session_id] = (n, ask)
                limits = {
                    session_id: self._claim_limit(rows[session_id], ask.seconds_per_send)
                    for session_id, (_, ask) in this_round.items()
                }
                claimed = await repo.claim_many(
                    [
                        ClaimRequest(session_id, ask.epoch, limits[session_id])
                        for session_id, (_, ask) in this_round.items()
                    ],
                    self._holder,
                    self._ctx.clock.now(),
                )
                for session_id, (n, _) in this_round.items():
                    answers[n] = NextBatch(
                        rows[session_id], claimed.get(session_id, []), limits[session_id]
                    )
                waiting = later
        return answers
