"""The dispatcher: takes queued recipients and sends them, exactly once, within limits.

One process serves many sessions at once (one asyncio task per leased send
slot), so a slow session never holds up the others. What is the same for all
slots is done once for all of them: each pass takes every free slot and the
first batch of each new session in a few statements, and results and lease
releases go through one group-committing writer (dispatch/writer.py), so a
thousand sessions cost a few transactions, not thousands. Every step that matters
is committed before the next begins: a recipient is ``sending`` (with its
attempt number and lease epoch) before its provider call, and its result is
written only where that epoch still matches. A worker killed at any point
leaves recipients ``sending`` under a lease that expires; the recovery pass of
any worker then retries them with the same client message id (providers that
ignore a repeated id) or fails them as ``UNKNOWN_OUTCOME`` (providers that do
not), so nothing is sent twice and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from wabroadcast.broadcasts.repository import IdempotencyRepository
from wabroadcast.context import AppContext
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch import pacing
from wabroadcast.dispatch.claims import ClaimBatcher, NextBatch
from wabroadcast.dispatch.repository import (
    Claimed,
    ClaimRequest,
    DispatchRepository,
    Result,
)
from wabroadcast.dispatch.retry import RetryPolicy
from wabroadcast.dispatch.writer import ResultWriter
from wabroadcast.domain.phones import mask_phone
from wabroadcast.domain.status import RecipientStatus, final_broadcast_status
from wabroadcast.observability import prometheus
from wabroadcast.observability.logging import BROADCAST_TAG, SEND_TAG, get_logger
from wabroadcast.providers.base import (
    OutgoingMessage,
    Pace,
    Provider,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.receipts.pending import apply_pending

log = get_logger("wabroadcast.dispatch")

UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
UNKNOWN_OUTCOME_MESSAGE = (
    "The worker stopped during the send, so it is unknown whether WhatsApp received the "
    "message; it is not sent again automatically, so it cannot arrive twice."
)
RECOVERY_LIMIT = 1000
FLUSH_EVERY = 500
# Most messages one provider call sends, one after another (see SlotRunner._send_next_call).
SEND_CALL = 500
# A call is handed about this many seconds of sends at a time, by the slot's measured
# pace (one before any send is timed), the rest as it goes: a cancel stops every send
# not handed yet. Not one at a time: each handing costs the event loop a little, in
# every one of a thousand sessions' waves.
HANDED_AT_ONCE_S = 0.5
FLUSH_AFTER_S = 0.25
# A slot claims about this many seconds of work at once (by its measured send
# time), so recipients are not shown as "sending" long before their turn; its
# first claim, before any send was timed, is FIRST_CLAIM recipients: small, so
# a worker taking up a thousand sessions writes 10,000 rows before its first send,
# not 20,000, and claims the rest while those first sends wait for WhatsApp. Not
# smaller: every batch adds a claim to each session's stream of sends, and on a
# busy machine a first claim of 5 made fan-out slower than one of 20.
CLAIM_SECONDS = 2.0
FIRST_CLAIM = 10
# The dispatcher renews its leases this many times per lease life.
RENEWALS_PER_TTL = 3
# Expired Idempotency-Key rows are deleted this often (by any worker).
PURGE_EVERY_S = 300.0
# Receipts that came before their send was recorded are looked at this often.
PENDING_RECEIPTS_EVERY_S = 1.0


def new_worker_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Runs until stopped: discovers sessions with work and runs their send slots."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id or new_worker_id()
        self.rng = rng or random.Random()
        settings = ctx.settings
        self.retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
        )
        self.lease_ttl = timedelta(seconds=settings.lease_ttl_s)
        self._slots: dict[tuple[str, int], asyncio.Task[None]] = {}
        # Slots whose lease this process holds, renewed together (renew_leases).
        self.held: dict[tuple[str, int], SlotRunner] = {}
        # Batches claimed so far by this process; lets callers see progress.
        self.claims = 0
        self.stopping = asyncio.Event()
        self._purged = float("-inf")
        self._pending_looked_at = float("-inf")
        # Claims, results and lease releases of all slots, each grouped.
        self.writer = ResultWriter(ctx, self.close_out)
        self.claimer = ClaimBatcher(ctx, self.worker_id, self.claim_limit)
        # Broadcasts cancelled while slots of this process held claimed recipients of
        # theirs, as of the last pass: those recipients are put back, never sent.
        self.cancelled: set[int] = set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Loop until ``stop`` is set, then let running sends finish and release every lease."""
        stop = stop or asyncio.Event()
        log.info(f"{BROADCAST_TAG} worker started", broadcast_id=None, worker_id=self.worker_id)
        renewer = asyncio.create_task(self._renew_until(stop), name="lease renewal")
        # Recipients of a dead worker become recoverable only when its lease expires,
        # so looking for them a few times per lease life is enough: the search reads
        # every recipient in flight, which with thousands of sessions is not cheap.
        recover_every = self.lease_ttl.total_seconds() / RENEWALS_PER_TTL
        recovered = float("-inf")
        try:
            while not stop.is_set():
                try:
                    recover = time.monotonic() - recovered >= recover_every
                    await self.tick(recover=recover)
                    if recover:
                        recovered = time.monotonic()
                except Exception as exc:
                    # A database restart or a network blip must not end the worker;
                    # everything a tick does is safe to try again on the next one.
                    log.exception(
                        f"{BROADCAST_TAG} worker pass failed; retrying",
                        broadcast_id=None,
                        worker_id=self.worker_id,
                        error=repr(exc),
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ctx.settings.worker_poll_s)
        finally:
            self.stopping.set()
            if self._slots:
                await asyncio.gather(*self._slots.values(), return_exceptions=True)
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            log.info(f"{BROADCAST_TAG} worker stopped", broadcast_id=None, worker_id=self.worker_id)

    async def _renew_until(self, stop: asyncio.Event) -> None:
        """Renew every held lease a few times per lease life, in one transaction each time.

        One statement for all slots, apart from their sends: a slot waiting for a
        database connection (thousands of slots share a small pool) must not lose
        its lease for that, or another worker would take over its session.
        """
        period = self.lease_ttl.total_seconds() / RENEWALS_PER_TTL
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            try:
                await self.renew_leases()
            except Exception as exc:
                # A slot renews its own lease when this has not for two thirds of its life.
                log.warning(
                    f"{BROADCAST_TAG} lease renewal failed; retrying",
                    broadcast_id=None,
                    worker_id=self.worker_id,
                    error=repr(exc),
                )

    async def renew_leases(self, runners: Sequence[SlotRunner] | None = None) -> None:
        """Extend the leases of ``runners`` (default: all held); a slot whose lease is gone
        is told so (``lost``). On a connection of its own, never queued behind sends."""
        held = list(self.held.values() if runners is None else runners)
        if not held:
            return
        started = time.monotonic()
        async with self.ctx.database.control_transaction() as db:
            renewed = await DispatchRepository(db).renew_slots(
                [(r.session_id, r.slot, r.epoch) for r in held],
                self.worker_id,
                self.ctx.clock.now(),
                self.lease_ttl,
            )
        for runner in held:
            if (runner.session_id, runner.slot, runner.epoch) in renewed:
                runner.renewed = max(runner.renewed, started)
                prometheus.record_lease("renewed")
            else:
                runner.lost = True

    async def run_until_idle(self, max_rounds: int = 10_000) -> None:
        """Tick and wait for the slots, until a round claims nothing (no work is due now)."""
        for _ in range(max_rounds):
            before = self.claims
            await self.tick()
            running = [task for task in self._slots.values() if not task.done()]
            if running:
                await asyncio.gather(*running)
            if self.claims == before:
                return
        raise RuntimeError("dispatcher did not become idle")

    async def tick(self, *, recover: bool = True) -> None:
        """One pass: recover orphans (if ``recover``), the providers' background work (the
        simulator's receipts) and early receipts, then start slots for sessions with work."""
        if recover:
            await self.recover_orphans()
        await self.note_cancelled()
        for plugin in PLUGINS.values():
            if plugin.background is not None:
                await plugin.background(self.ctx)
        if time.monotonic() - self._pending_looked_at >= PENDING_RECEIPTS_EVERY_S:
            await apply_pending(self.ctx)
            self._pending_looked_at = time.monotonic()
        if time.monotonic() - self._purged >= PURGE_EVERY_S:
            async with self.ctx.database.transaction() as db:
                await IdempotencyRepository(db).purge_expired(self.ctx.clock.now())
            self._purged = time.monotonic()
        running = {key for key, task in self._slots.items() if not task.done()}
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            # Only sessions with a slot this process is not running yet: with a
            # thousand sessions sending, most passes find none.
            session_ids = [
                session_id
                for session_id, slots in (await repo.sessions_with_work()).items()
                if any((session_id, slot) not in running for slot in range(slots))
            ]
            # One query and one insert for all sessions, not one transaction each:
            # a worker may serve thousands of sessions.
            rows = await repo.get_sessions(session_ids)
            # Lease rows exist for every slot this process is running already.
            await repo.ensure_slots_many(
                [
                    (r.id, r.tenant_id, r.max_concurrency)
                    for r in rows
                    if any((r.id, n) not in running for n in range(r.max_concurrency))
                ]
            )
            idle = [
                (row.id, slot)
                for row in rows
                for slot in range(row.max_concurrency)
                if (row.id, slot) not in running
            ]
            taken = await repo.acquire_slots(
                idle, self.worker_id, self.ctx.clock.now(), self.lease_ttl
            )
            # Each session's first new slot gets its first batch here, in one
            # statement for all sessions, so a thousand sessions start together.
            by_id = {row.id: row for row in rows}
            first_slots: dict[str, tuple[int, int]] = {}
            for (session_id, slot), epoch in sorted(taken.items()):
                first_slots.setdefault(session_id, (slot, epoch))
            limits = {
                session_id: self.claim_limit(by_id[session_id], None) for session_id in first_slots
            }
            first = await repo.claim_many(
                [
                    ClaimRequest(session_id, epoch, limits[session_id])
                    for session_id, (slot, epoch) in first_slots.items()
                ],
                self.worker_id,
                self.ctx.clock.now(),
            )
            # A session with nothing due now (all waiting for a retry time, say)
            # gives its slots back at once; a later pass looks again.
            idle_now = [(s, n, e) for (s, n), e in taken.items() if s not in first]
            await repo.release_slots(idle_now)
        self.claims += len(first)
        for (session_id, slot), epoch in taken.items():
            if session_id not in first:
                continue
            claimed: list[Claimed] = []
            if first_slots[session_id][0] == slot:
                claimed = first[session_id]
            runner = SlotRunner(
                self, session_id, slot, epoch, by_id[session_id], claimed, limits[session_id]
            )
            self._slots[(session_id, slot)] = asyncio.create_task(
                runner.run(), name=f"slot {session_id}#{slot}"
            )
        self._slots = {key: task for key, task in self._slots.items() if not task.done()}

    async def note_cancelled(self, runners: Sequence[SlotRunner] | None = None) -> None:
        """Find out which broadcasts whose recipients ``runners`` (default: every slot of
        this process) hold claimed were cancelled since, whichever process took the
        cancel. Every pass does it for all slots, so a cancel stops their sends within
        about ``worker_poll_s``; a paced slot also does it just before each send."""
        held = list(self.held.values() if runners is None else runners)
        in_hand = {b for runner in held for b in runner.broadcasts_in_hand()}
        found: set[int] = set()
        if in_hand:
            async with self.ctx.database.transaction() as db:
                found = await DispatchRepository(db).cancelled_among(sorted(in_hand))
        if runners is None:
            self.cancelled = found
        else:
            self.cancelled |= found

    def claim_limit(self, row: WhatsAppSession, seconds_per_send: float | None) -> int:
        """How many recipients one slot of the session claims at once.

        Without idempotent message ids, one at a time, so a crash leaves at most
        one unknown outcome per slot. Otherwise a fair part of a batch (slots of one
        session share the work), but only about CLAIM_SECONDS of it, so recipients
        are not shown as "sending" long before their turn.
        """
        provider = self.ctx.providers.for_kind(row.provider)
        if not provider.supports_client_message_id:
            return 1
        limit = max(1, self.ctx.settings.claim_batch // row.max_concurrency)
        pace = pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
        if pace.paced:
            return min(limit, max(1, math.ceil(pace.rate_per_minute / 60 * CLAIM_SECONDS)))
        if seconds_per_send is None:
            return min(limit, FIRST_CLAIM)
        if seconds_per_send > 0:
            return min(limit, max(1, int(CLAIM_SECONDS / seconds_per_send)))
        return limit

    async def recover_orphans(self) -> None:
        """Resolve recipients left ``sending`` by a lease that expired (a dead worker)."""
        now = self.ctx.clock.now()
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            orphans = await repo.orphaned_sending(now, RECOVERY_LIMIT)
            if not orphans:
                return
            # One query for the sessions involved, not one per orphan.
            kinds = {
                row.id: row.provider
                for row in await repo.get_sessions(sorted({o[2] for o in orphans}))
            }
            results = []
            for recipient_id, broadcast_id, session_id, attempts in orphans:
                provider = self.ctx.providers.for_kind(kinds[session_id])
                retry = provider.supports_client_message_id and not self.retry.exhausted(attempts)
                if retry:
                    prometheus.record_retry(provider.kind, UNKNOWN_OUTCOME)
                results.append(
                    Result(
                        recipient_id,
                        broadcast_id,
                        epoch=0,
                        status=RecipientStatus.QUEUED if retry else RecipientStatus.FAILED,
                        error_code=UNKNOWN_OUTCOME,
                        keep_client_message_id=True,
                        error_message=(
                            "The worker stopped during the send; retrying with the same "
                            "message id, which WhatsApp will not deliver twice."
                            if retry
                            else UNKNOWN_OUTCOME_MESSAGE
                        ),
                    )
                )
            touched = await repo.record(results, now, fenced=False)
            await self.close_out(repo, touched)
        log.warning(
            f"{BROADCAST_TAG} recovered sends with unknown outcome",
            broadcast_id=sorted({o[1] for o in orphans}),
            count=len(orphans),
        )

    async def close_out(self, repo: DispatchRepository, broadcast_ids: set[int]) -> None:
        """After results: cancel what a cancelled broadcast re-queued, finish what is done."""
        now = self.ctx.clock.now()
        await repo.sweep_cancelled(broadcast_ids, now)
        finishable = await repo.finishable(broadcast_ids)
        finished = [
            (broadcast, final_broadcast_status(broadcast.sent, broadcast.failed))
            for broadcast in finishable
        ]
        await repo.finish_many([(broadcast.id, status) for broadcast, status in finished], now)
        for broadcast, status in finished:
            log.info(
                f"{BROADCAST_TAG} finished",
                broadcast_id=broadcast.id,
                status=status.value,
                queued_count=0,
                sent_count=broadcast.sent,
                failed_count=broadcast.failed,
                cancelled_count=broadcast.cancelled,
            )


def _outgoing(items: Sequence[Claimed]) -> list[OutgoingMessage]:
    """The messages a provider call sends for these claimed recipients."""
    return [OutgoingMessage(i.phone, i.message, i.client_message_id, i.template) for i in items]


def _failed(future: asyncio.Future[Any]) -> bool:
    """A done future that did not succeed."""
    return future.cancelled() or future.exception() is not None


class _CallResults:
    """What one provider call of a slot produced so far: which positions are done, and
    their log lines (each written once, when its result is known) and metrics."""

    def __init__(
        self,
        runner: SlotRunner,
        ref: SessionRef,
        items: Sequence[Claimed],
        started_at: datetime,
        started: float,
    ) -> None:
        self.taken: set[int] = set()
        self._ref = ref
        self._items = items
        self._started_at = started_at
        self._started = started
        self._counted: list[tuple[str, str | None, float | None]] = []
        self._logged = log.is_enabled_for(logging.INFO)
        # Bound only when info is logged: a thousand slots start a call at once.
        self._log = log.bind(session_id=runner.session_id) if self._logged else log

    def note(self, position: int, outcome: SendResult, result: Result) -> None:
        """The result of ``items[position]`` is known (``taken`` if during the call)."""
        self.taken.add(position)
        item = self._items[position]
        due = None if item.due_at is None else (self._started_at - item.due_at).total_seconds()
        self._counted.append((outcome.outcome.value, outcome.error_code, due))
        if self._logged:
            self._log.info(
                f"{SEND_TAG} attempt",
                broadcast_id=item.broadcast_id,
                phone=mask_phone(item.phone),
                attempt=item.attempts,
                outcome=outcome.outcome.value,
                status=result.status.value,
                error_code=outcome.error_code,
                repeated=outcome.repeated,
                latency_ms=round((time.monotonic() - self._started) * 1000, 1),
            )

    def count(self, per_send_s: float) -> None:
        """Count every result in the metrics, in one go (label lookups once per outcome,
        not per message), each taking ``per_send_s``."""
        prometheus.record_call(self._ref.provider, self._counted, per_send_s)
        self._counted = []


class LeaseLost(Exception):
    """Our slot lease expired and may be someone else's: stop sending at once."""


class SlotRunner:
    """One send slot of one session: at most one provider call in flight at a time."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        session_id: str,
        slot: int,
        epoch: int,
        row: WhatsAppSession | None = None,
        claimed: Sequence[Claimed] = (),
        claim_limit: int = 0,
    ) -> None:
        self.d = dispatcher
        self.ctx = dispatcher.ctx
        self.session_id = session_id
        self.slot = slot
        # The lease the dispatcher took for this slot (Dispatcher.tick).
        self.epoch = epoch
        # The session as read when the lease was taken, and the batch claimed then
        # (sent first, before this slot claims on its own).
        self._row = row
        self._first = list(claimed)
        self._limit = claim_limit
        # Claimed recipients not yet handed to the provider, in order; the batch
        # being claimed ahead; whether the last batch was full (more may be due).
        self._todo: deque[Claimed] = deque()
        # Claimed recipients of broadcasts cancelled since, taken off the queue and
        # not sent: put back (and so cancelled) after the call under way.
        self._dropped: list[Claimed] = []
        # The broadcasts of the batches taken since the queue was last empty.
        self._in_hand: set[int] = set()
        self._upcoming: asyncio.Task[NextBatch | None] | None = None
        self._full = True
        # Set to have the batch claimed ahead claimed now: the slot ran out before
        # the planned moment, or (the first time) its first send was just timed.
        self._needed = asyncio.Event()
        # This slot's results not yet handed to the writer, when it last was handed
        # some, and those on their way to the database (a new batch is handed over
        # only when none is, except the last, when the slot stops).
        self._unwritten: list[Result] = []
        self._handed_at = time.monotonic()
        self._flushing: list[asyncio.Future[None]] = []
        # When the lease was last known renewed (monotonic), and whether it is gone.
        self.renewed = time.monotonic()
        self.lost = False
        # Measured seconds per message of this slot's provider calls (moving average).
        self.seconds_per_send: float | None = None

    async def run(self) -> None:
        """Send while there is due work, then release the slot's lease; never raise.

        Every failure is logged here: a slot is retried on the next pass, and an
        unreleased lease simply expires, which recovery already handles.
        """
        try:
            await self._run()
        except Exception as exc:
            log.exception(
                f"{BROADCAST_TAG} slot failed",
                broadcast_id=None,
                session_id=self.session_id,
                slot=self.slot,
                error=repr(exc),
            )

    async def _run(self) -> None:
        prometheus.record_lease("acquired")
        key = (self.session_id, self.slot)
        self.d.held[key] = self
        try:
            await self._loop()
        except LeaseLost:
            prometheus.record_lease("lost")
            log.warning(
                f"{BROADCAST_TAG} lease lost; stopping this slot",
                broadcast_id=None,
                session_id=self.session_id,
                slot=self.slot,
                epoch=self.epoch,
            )
        finally:
            self.d.held.pop(key, None)
            try:
                # Everything this slot sent is written before its lease is given up.
                self._hand_over()
                await self._flushed()
            finally:
                await self.d.writer.write([], release=(self.session_id, self.slot, self.epoch))
                prometheus.record_lease("released")

    async def _loop(self) -> None:
        """Send batch after batch; stop after a short one (the session had nothing more
        due when it was claimed: a later pass looks again) or when the session must.

        With a provider that ignores a repeated message id, the next batch is claimed
        while this one goes out, and joins the provider call under way when that
        call runs out of messages, so the session never waits between batches. Not
        without: there every claimed recipient is one a crash would leave with an
        unknown outcome, so only the one being sent may be claimed.
        """
        if self._first:
            assert self._row is not None
            self._take(NextBatch(self._row, self._first, self._limit), counted=True)
            self._first = []
        try:
            while True:
                if not self._todo:
                    batch = await self._next_batch()
                    if batch is None or not batch.claimed:
                        return
                    self._take(batch)
                if await self._send_next_call():
                    return
        finally:
            unsent, self._todo = list(self._todo), deque()
            if self._upcoming is not None:
                self._needed.set()  # a claim ahead still waiting: let it end
                batch, self._upcoming = await self._upcoming, None
                if batch is not None:
                    unsent.extend(batch.claimed)
            await self._unclaim(unsent)

    async def _next_batch(self) -> NextBatch | None:
        """The batch claimed ahead, else a new claim if the last batch was full."""
        if self._upcoming is not None:
            upcoming, self._upcoming = self._upcoming, None
            # The batch ran out sooner than its measured pace said: claim now.
            self._needed.set()
            return await upcoming
        if self.d.stopping.is_set() or not self._full:
            return None
        return await self._claim_next()

    def _take(self, batch: NextBatch, *, counted: bool = False) -> None:
        """Queue a claimed batch for sending; claim the next one ahead when this one is
        full and the provider ignores a repeated message id."""
        if not counted:
            self.d.claims += 1
        self._row, self._limit = batch.row, batch.limit
        if not self._todo:
            self._in_hand = set()
        self._in_hand.update({item.broadcast_id for item in batch.claimed})
        self._todo.extend(batch.claimed)
        self._full = len(batch.claimed) >= batch.limit
        provider = self.ctx.providers.for_kind(batch.row.provider)
        if provider.supports_client_message_id and self._full and not self.d.stopping.is_set():
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
            self._upcoming = asyncio.create_task(self._claim_next(after=halfway))

    async def _claim_next(self, after: float | None = 0.0) -> NextBatch | None:
        """The next batch, claimed ``after`` seconds from now (None: once the first send
        is timed), or as soon as the slot needs it (``_needed``)."""
        if after is None:
            await self._needed.wait()
        elif after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._needed.wait(), after)
        return await self.d.claimer.next_batch(
            self.session_id, self.slot, self.epoch, self.seconds_per_send
        )

    async def _send_next_call(self) -> bool:
        """One provider call over the queued recipients; True when the session must stop.

        Unpaced, with a provider that ignores a repeated message id, up to
        ``SEND_CALL`` messages go out one after another in one call (as the
        slot's one connection would send them), joined by the next batch if it
        is claimed in time; otherwise one per call, each after its pacing turn.
        The session stops on a disconnect or an account-level error.
        """
        assert self._row is not None
        row = self._row
        provider = self.ctx.providers.for_kind(row.provider)
        pace = pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
        if self.d.stopping.is_set():
            return True
        try:
            ref = self.ctx.session_refs.of(row)
        except (SecretKeyMissing, SecretsUnreadable) as exc:
            # Nothing can be sent without them: the claimed recipients go back, queued.
            log.error(
                f"{BROADCAST_TAG} cannot send: the session's secrets cannot be read",
                broadcast_id=sorted(self._in_hand),
                session_id=self.session_id,
                error=str(exc),
            )
            return True
        stop_session = False
        try:
            await self._keep_lease()
            if pace.paced:
                await self._wait_for_pace(pace)
                # The turn may have been seconds away: was the broadcast cancelled meanwhile?
                await self.d.note_cancelled([self])
            many = provider.supports_client_message_id and not pace.paced
            # Taken off the queue before the call: if the call is interrupted, these
            # recipients stay ``sending`` and recovery decides, not a blind re-queue.
            call = self._next_to_send(self._handed_at_once() if many else 1)
            if not call:
                return False  # all of them were cancelled
            sent, attempted = await self._send_call(provider, ref, call, many=many)
            # A call cut short attempted only the first ones: the rest go back.
            self._todo.extendleft(reversed(call[attempted:]))
            for result, outcome in sent:
                if outcome.outcome is SendOutcome.ACCOUNT_BLOCKED:
                    results, self._unwritten = [*self._unwritten, result], []
                    await self._pause_session(outcome, results)
                    stop_session = True
                    continue
                self._unwritten.append(result)
                if outcome.outcome is SendOutcome.DISCONNECTED:
                    stop_session = True
            # Results are written in batches, but never held long: clients and
            # receipts should see a send soon after it happened. Only a full batch
            # waits for the one before it (so memory stays bounded when the
            # database is slower than the sends); otherwise sending goes on.
            if len(self._unwritten) >= FLUSH_EVERY:
                await self._flush()
        finally:
            self._hand_over_if_due()
            if self._dropped:
                dropped, self._dropped = self._dropped, []
                await self._unclaim(dropped)
        return stop_session

    def _handed_at_once(self) -> int:
        """How many queued recipients a call is handed at a time (``_more`` hands the
        rest as it goes): about HANDED_AT_ONCE_S of sends, so that a cancel stops the
        sends of a slow call not handed yet, not only those of later calls."""
        per_send = self.seconds_per_send
        if per_send is None:
            return 1
        if per_send * SEND_CALL <= HANDED_AT_ONCE_S:
            return SEND_CALL
        return max(1, int(HANDED_AT_ONCE_S / per_send))

    def _next_to_send(self, count: int) -> list[Claimed]:
        """Up to ``count`` recipients off the queue, in order, to hand the provider;
        those of broadcasts cancelled since they were claimed go aside (``_dropped``)."""
        count = min(count, len(self._todo))
        cancelled = self.d.cancelled
        if not cancelled:
            return [self._todo.popleft() for _ in range(count)]
        taken: list[Claimed] = []
        while self._todo and len(taken) < count:
            item = self._todo.popleft()
            (self._dropped if item.broadcast_id in cancelled else taken).append(item)
        return taken

    def broadcasts_in_hand(self) -> set[int]:
        """The broadcasts of the recipients this slot holds claimed and has not sent (and
        maybe of some it sent since: kept per batch, not per message)."""
        return self._in_hand if self._todo else set()

    def _more(self, call: list[Claimed], ref: SessionRef) -> list[Claimed]:
        """Recipients that join ``call`` now that the provider has sent all it had: the
        queued ones, else the batch claimed ahead if it is ready and goes the same way
        (same provider, unpaced).

        It returns none, and the call ends, when the call is full, the worker is stopping, or the
        lease is lost or due for renewal (which ``_keep_lease`` does between calls).
        """
        if len(call) >= SEND_CALL or self.d.stopping.is_set() or self.lost or self._renewal_due():
            return []
        upcoming = self._upcoming
        if not self._todo and upcoming is not None and upcoming.done() and not _failed(upcoming):
            batch = upcoming.result()
            if batch is None or not batch.claimed or batch.row.provider != ref.provider:
                return []
            row = batch.row
            if pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms).paced:
                return []
            self._upcoming = None
            self._take(batch)
        more = self._next_to_send(min(SEND_CALL - len(call), self._handed_at_once()))
        call.extend(more)
        return more

    async def _send_call(
        self, provider: Provider, ref: SessionRef, items: list[Claimed], *, many: bool
    ) -> tuple[list[tuple[Result, SendResult]], int]:
        """One provider call for ``items`` (``send_many`` if ``many``, which the queued
        recipients may join as it goes, see ``_more``): the results of the recipients
        it attempted that were not taken during the call (``_take_early``), and how
        many it attempted.

        Each result is logged as it comes (a long call's sent results as they arrive,
        the rest when the call returns); all are counted in the metrics just after.
        """
        started = time.monotonic()
        call = _CallResults(self, ref, items, self.ctx.clock.now(), started)
        idempotent = provider.supports_client_message_id

        def take_early(position: int, outcome: SendResult) -> None:
            # Sent during a long call: written while the call goes on, not after it.
            if outcome.outcome is SendOutcome.SENT and position not in call.taken:
                self._timed((time.monotonic() - started) / (position + 1))
                result = self._result_for(items[position], outcome, unknown=False, idempotent=True)
                call.note(position, outcome, result)
                self._take_early(result)

        def more() -> list[OutgoingMessage]:
            return _outgoing(self._more(items, ref))

        unknown = False
        try:
            if many:
                sent = await provider.send_many(ref, _outgoing(items), take_early, more)
            else:
                (message,) = _outgoing(items)
                sent = [await provider.send(ref, message)]
        except Exception as exc:
            # The provider could not say what happened: the messages may have left.
            unknown = True
            failure = SendResult(
                SendOutcome.RETRY_LATER,
                error_code=UNKNOWN_OUTCOME,
                error_message=f"The provider call failed: {exc!r}"[:500],
            )
            sent = [failure] * len(items)
        elapsed = time.monotonic() - started
        self._timed(elapsed / max(1, len(sent)))
        done: list[tuple[Result, SendResult]] = []
        for position, (item, outcome) in enumerate(zip(items, sent, strict=False)):
            if position in call.taken:
                continue  # sent, and being written as such, whatever the call did later
            result = self._result_for(item, outcome, unknown=unknown, idempotent=idempotent)
            if result.status is RecipientStatus.QUEUED and not result.refund_attempt:
                prometheus.record_retry(ref.provider, outcome.error_code)
            call.note(position, outcome, result)
            done.append((result, outcome))
        # Counted just after this step: the slot's next send starts first. When a
        # thousand slots finish a call at once, their metrics would otherwise hold
        # up every next send behind them.
        asyncio.get_running_loop().call_soon(call.count, elapsed / max(1, len(sent)))
        return done, len(sent)

    def _timed(self, per_send: float) -> None:
        """Fold a measured time per message into ``seconds_per_send`` (moving average)."""
        if self.seconds_per_send is None:
            self._needed.set()  # the claim ahead waited for this first timing
        self.seconds_per_send = (
            per_send
            if self.seconds_per_send is None
            else 0.7 * self.seconds_per_send + 0.3 * per_send
        )

    async def _unclaim(self, pending: Sequence[Claimed]) -> None:
        """Claimed recipients whose provider call never started go back to queued, and
        to cancelled if their broadcast was cancelled meanwhile."""
        if not pending:
            return
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            now = self.ctx.clock.now()
            await repo.unclaim(pending, self.epoch, now)
            await repo.sweep_cancelled({item.broadcast_id for item in pending}, now)

    def _result_for(
        self, item: Claimed, sent: SendResult, *, unknown: bool, idempotent: bool
    ) -> Result:
        ids = (item.recipient_id, item.broadcast_id, self.epoch)
        if sent.outcome is SendOutcome.SENT:
            return Result(*ids, RecipientStatus.SENT, provider_message_id=sent.provider_message_id)
        now = self.ctx.clock.now()
        if sent.outcome is SendOutcome.FAILED or (unknown and not idempotent):
            message = UNKNOWN_OUTCOME_MESSAGE if unknown else sent.error_message
            return Result(
                *ids, RecipientStatus.FAILED, error_code=sent.error_code, error_message=message
            )
        if sent.outcome in (SendOutcome.DISCONNECTED, SendOutcome.ACCOUNT_BLOCKED):
            # Not the recipient's fault and nothing was sent: hold without using an attempt.
            return Result(
                *ids,
                RecipientStatus.QUEUED,
                error_code=sent.error_code,
                error_message=sent.error_message,
                next_attempt_at=now + timedelta(seconds=self.ctx.settings.disconnected_hold_s),
                refund_attempt=True,
            )
        if self.d.retry.exhausted(item.attempts):
            return Result(
                *ids,
                RecipientStatus.FAILED,
                error_code=sent.error_code,
                error_message=f"{sent.error_message} Gave up after {item.attempts} attempts.",
            )
        return Result(
            *ids,
            RecipientStatus.QUEUED,
            error_code=sent.error_code,
            error_message=sent.error_message,
            next_attempt_at=self.d.retry.next_attempt_at(now, item.attempts, self.d.rng),
            keep_client_message_id=unknown,
        )

    def _take_early(self, result: Result) -> None:
        """A result that arrived during a call (never waits: called from the call)."""
        self._unwritten.append(result)
        self._hand_over_if_due()

    def _hand_over_if_due(self, *, idle_for: float = 0.0) -> None:
        """Hand the unwritten results to the writer if a batch is due, counting the
        ``idle_for`` seconds the slot is about to wait, and none of this slot's is on
        its way (a failed one is raised by ``_flushed`` instead)."""
        if any(not flushing.done() or _failed(flushing) for flushing in self._flushing):
            return
        if (
            len(self._unwritten) >= FLUSH_EVERY
            or time.monotonic() + idle_for - self._handed_at >= FLUSH_AFTER_S
        ):
            self._hand_over()

    def _hand_over(self) -> None:
        """The unwritten results to the writer, without waiting for their commit."""
        if self._unwritten:
            # Committed ones are forgotten; failed ones kept for _flushed to raise.
            self._flushing = [f for f in self._flushing if not f.done() or _failed(f)]
            self._flushing.append(self.d.writer.write_soon(self._unwritten))
            self._unwritten = []
        self._handed_at = time.monotonic()

    async def _flush(self) -> None:
        """Hand the unwritten results to the writer and go on sending while they are
        committed; waits first for this slot's earlier ones, so at most one batch is
        on its way."""
        if self._unwritten:
            await self._flushed()
            self._hand_over()

    async def _flushed(self) -> None:
        """Wait until this slot's results handed to the writer are committed."""
        while self._flushing:
            await self._flushing.pop(0)

    async def _pause_session(self, sent: SendResult, results: list[Result]) -> None:
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            now = self.ctx.clock.now()
            touched = await repo.record(results, now)
            paused = await repo.pause_session_broadcasts(
                self.session_id, sent.error_message or sent.error_code or "account blocked", now
            )
            await self.d.close_out(repo, touched)
        log.warning(
            f"{BROADCAST_TAG} paused: account-level error from WhatsApp",
            broadcast_id=paused,
            session_id=self.session_id,
            error_code=sent.error_code,
        )

    async def _keep_lease(self) -> None:
        """Raise unless the lease is surely still ours; renew it here if nobody did lately.

        The dispatcher renews all held leases together every third of a lease's
        life; this renews only when that has not happened for two thirds of it
        (``run_until_idle`` runs no renewal loop, or the loop is stuck), and a slot
        whose lease was found gone stops before its next send.
        """
        if not self.lost and self._renewal_due():
            await self.d.renew_leases([self])
        if self.lost:
            raise LeaseLost(self.session_id)

    def _renewal_due(self) -> bool:
        """The dispatcher has not renewed this slot's lease for two thirds of its life."""
        period = self.d.lease_ttl.total_seconds() / RENEWALS_PER_TTL
        return time.monotonic() - self.renewed >= 2 * period

    async def _wait_for_pace(self, pace: Pace) -> None:
        jitter = timedelta(milliseconds=self.d.rng.uniform(0, pace.jitter_ms))
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            now = self.ctx.clock.now()
            start, next_at = pacing.reserve(
                await repo.lock_pace(self.session_id), now, pace, jitter
            )
            await repo.set_pace(self.session_id, next_at)
        wait = (start - now).total_seconds()
        # Results are not held through the wait (8 a minute is 7.5 s): a recipient
        # shows as sent, with its sent_at, soon after its send.
        self._hand_over_if_due(idle_for=max(0.0, wait))
        while wait > 0:
            step = min(wait, self.d.lease_ttl.total_seconds() / 3)
            await asyncio.sleep(step)
            wait -= step
            await self._keep_lease()
