"""What one send slot holds claimed: the recipients queued for its provider calls, and
the next batch, claimed while they go out, sized by the slot's measured pace."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence

from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch import pacing
from wabroadcast.dispatch.claims import NextBatch
from wabroadcast.dispatch.host import SlotHost
from wabroadcast.dispatch.repository.rows import Claimed
from wabroadcast.dispatch.writer import failed


class SlotBatches:
    def __init__(
        self,
        host: SlotHost,
        lease: tuple[str, int, int],
        row: WhatsAppSession | None,
        first: Sequence[Claimed],
        first_limit: int,
    ) -> None:
        self._host = host
        # The slot's lease: (session, slot, epoch).
        self._lease = lease
        # The session as last read (with the last batch), and the batch claimed when
        # the lease was taken (queued first, before the slot claims on its own).
        self.row = row
        self._first = list(first)
        self._first_limit = first_limit
        # Claimed recipients not yet handed to the provider, in order; whether the
        # last batch was full (more may be due); the batch being claimed ahead.
        self.todo: deque[Claimed] = deque()
        self._full = True
        self.upcoming: asyncio.Task[NextBatch | None] | None = None
        # Claimed recipients of broadcasts cancelled since, taken off the queue and
        # not sent: put back (and so cancelled) after the call under way.
        self.dropped: list[Claimed] = []
        # Whether a queued recipient has quiet hours to check before its send.
        self._watched = False
        # The broadcasts of the batches queued since the queue was last empty.
        self.in_hand: set[int] = set()
        # Set to have the batch claimed ahead claimed now: the slot ran out before
        # the planned moment, or (the first time) its first send was just timed.
        self._needed = asyncio.Event()
        # Measured seconds per message of the slot's provider calls (moving average).
        self.seconds_per_send: float | None = None

    def start(self) -> None:
        """Queue the batch claimed with the lease, if any."""
        if self._first:
            assert self.row is not None
            self.queue(NextBatch(self.row, self._first, self._first_limit), counted=True)
            self._first = []

    async def next_batch(self) -> NextBatch | None:
        """The batch claimed ahead, else a new claim if the last batch was full."""
        if self.upcoming is not None:
            upcoming, self.upcoming = self.upcoming, None
            # The batch ran out sooner than its measured pace said: claim now.
            self._needed.set()
            return await upcoming
        if self._host.stopping.is_set() or not self._full:
            return None
        return await self._claim_next()

    def queue(self, batch: NextBatch, *, counted: bool = False) -> None:
        """Queue a claimed batch for sending; claim the next one ahead when this one is
        full and the provider ignores a repeated message id."""
        if not counted:
            self._host.count_claim()
        self.row, self._first_limit = batch.row, batch.limit
        if not self.todo:
            self.in_hand = set()
        self.in_hand.update({item.broadcast_id for item in batch.claimed})
        if not self.todo:
            self._watched = False
        self._watched = self._watched or any(item.quiet is not None for item in batch.claimed)
        self.todo.extend(batch.claimed)
        self._full = len(batch.claimed) >= batch.limit
        provider = self._host.ctx.providers.for_kind(batch.row.provider)
        if provider.supports_client_message_id and self._full and not self._host.stopping.is_set():
            # Halfway through this batch (by its expected time): away from the
            # moments its results are written, when the slot is busiest. Before
            # any send is timed, once the first is: the claim is then sized by a
            # known pace, and it does not compete with the first sends of every
            # session starting at once.
            halfway = (
                None
                if self.seconds_per_send is None
                else len(batch.claimed) * self.seconds_per_send / 2
            )
            self._needed = asyncio.Event()
            self.upcoming = asyncio.create_task(self._claim_next(after=halfway))

    async def _claim_next(self, after: float | None = 0.0) -> NextBatch | None:
        """The next batch, claimed ``after`` seconds from now (None: once the first send
        is timed), or as soon as the slot needs it (``_needed``)."""
        if after is None:
            await self._needed.wait()
        elif after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._needed.wait(), after)
        session_id, slot, epoch = self._lease
        return await self._host.claimer.next_batch(session_id, slot, epoch, self.seconds_per_send)

    def queue_ready(self, provider: str) -> None:
        """With nothing queued, queue the batch claimed ahead if it is in and can join a
        call under way (same provider, unpaced)."""
        upcoming = self.upcoming
        if self.todo or upcoming is None or not upcoming.done() or failed(upcoming):
            return
        batch = upcoming.result()
        if batch is None or not batch.claimed or batch.row.provider != provider:
            return
        row = batch.row
        if pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms).paced:
            return
        self.upcoming = None
        self.queue(batch)

    def next_to_send(self, count: int) -> list[Claimed]:
        """Up to ``count`` recipients off the queue, in order, to hand the provider;
        those of broadcasts cancelled since they were claimed, and those whose quiet
        hours began since, go aside (``dropped``: put back unsent)."""
        count = min(count, len(self.todo))
        cancelled = self._host.cancelled
        if not cancelled and not self._watched:
            return [self.todo.popleft() for _ in range(count)]
        now = self._host.ctx.clock.now()
        sendable: list[Claimed] = []
        while self.todo and len(sendable) < count:
            item = self.todo.popleft()
            held = item.broadcast_id in cancelled or (
                item.quiet is not None and item.quiet.holds(now)
            )
            (self.dropped if held else sendable).append(item)
        return sendable

    def put_back(self, unsent: Sequence[Claimed]) -> None:
        """Recipients handed to a call that was cut short before it attempted them."""
        self.todo.extendleft(reversed(unsent))

    def take_dropped(self) -> list[Claimed]:
        dropped, self.dropped = self.dropped, []
        return dropped

    def broadcasts_in_hand(self) -> set[int]:
        """The broadcasts of the recipients this slot holds claimed and has not sent (and
        maybe of some it sent since: kept per batch, not per message)."""
        return self.in_hand if self.todo else set()

    def timed(self, per_send: float) -> None:
        """Fold a measured time per message into ``seconds_per_send`` (moving average)."""
        if self.seconds_per_send is None:
            self._needed.set()  # the claim ahead waited for this first timing
        self.seconds_per_send = (
            per_send
            if self.seconds_per_send is None
            else 0.7 * self.seconds_per_send + 0.3 * per_send
        )

    async def unsent(self) -> list[Claimed]:
        """Everything still held claimed, once the slot stops: the queue and the batch
        claimed ahead (its claim let finish first)."""
        unsent, self.todo = list(self.todo), deque()
        if self.upcoming is not None:
            self._needed.set()  # a claim ahead still waiting: let it end
            batch, self.upcoming = await self.upcoming, None
            if batch is not None:
                unsent.extend(batch.claimed)
        return unsent
