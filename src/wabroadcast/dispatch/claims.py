"""Group commit of claims: the next batch of every slot that asks meanwhile, in one transaction.

A slot that has sent its batch asks here for the next one. With a thousand
sessions sending, a transaction per ask would cost more than the sends; asks
that arrive while a claim transaction runs are served together by the next, in
one claim statement: the slots of one session that asked meanwhile share one
claim, split between them in order (each part moved to its slot's lease epoch
in one more statement), which matters most for providers without client message
ids, whose slots claim one recipient at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wabroadcast.context import AppContext
from wabroadcast.db.group_commit import GroupCommit
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.rows import Claimed, ClaimRequest

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
        """One claim per session for all its slots that asked: the session's oldest due
        recipients, split in order between the slots, each part under its slot's epoch."""
        answers: list[NextBatch | None] = [None] * len(asks)
        async with self._ctx.database.transaction() as db:
            leases = LeaseRepository(db)
            rows = {
                row.id: row
                for row in await leases.get_sessions(sorted({a.session_id for a in asks}))
            }
            groups: dict[str, list[tuple[int, _Ask, int]]] = defaultdict(list)
            for n, ask in enumerate(asks):
                row = rows.get(ask.session_id)
                if row is not None and ask.slot < row.max_concurrency:
                    limit = self._claim_limit(row, ask.seconds_per_send)
                    groups[ask.session_id].append((n, ask, limit))
            repo = ClaimRepository(db)
            claimed = await repo.claim_many(
                [
                    ClaimRequest(session_id, group[0][1].epoch, sum(lim for _, _, lim in group))
                    for session_id, group in groups.items()
                ],
                self._holder,
                self._ctx.clock.now(),
            )
            moved: list[tuple[int, int]] = []
            for session_id, group in groups.items():
                batch = claimed.get(session_id, [])
                start = 0
                for n, ask, limit in group:
                    part = batch[start : start + limit]
                    start += limit
                    if ask.epoch != group[0][1].epoch:
                        moved += [(item.recipient_id, ask.epoch) for item in part]
                    answers[n] = NextBatch(rows[session_id], part, limit)
            await repo.set_lease_epochs(moved)
        return answers
