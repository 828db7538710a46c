"""The dispatcher: takes queued recipients and sends them, exactly once, within limits.

One process serves many sessions at once (one asyncio task per leased send
slot, dispatch/slot.py), so a slow session never holds up the others. What is
the same for all slots is done here once for all of them: each pass takes every
free slot and the first batch of each new session in a few statements, recovers
orphans and closes out broadcasts (finished, or cancelled meanwhile); results and lease
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
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.finishing import finish_done
from wabroadcast.broadcasts.repository.idempotency import IdempotencyRepository
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.deliverer import WebhookDeliverer
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch import outcome, pacing
from wabroadcast.dispatch.brake import ErrorRateBrake
from wabroadcast.dispatch.claims import ClaimBatcher
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.lifecycle import LifecycleRepository
from wabroadcast.dispatch.repository.results import ResultRepository
from wabroadcast.dispatch.repository.rows import Claimed, ClaimRequest, Result
from wabroadcast.dispatch.retry import RetryPolicy
from wabroadcast.dispatch.slot import SlotRunner
from wabroadcast.dispatch.tuning import Tuning
from wabroadcast.dispatch.writer import ResultWriter
from wabroadcast.observability import prometheus
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.opt_outs.confirmations import send_due_replies
from wabroadcast.providers.base import SendResult
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.receipts.pending import apply_pending

log = get_logger("wabroadcast.dispatch")


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
        tuning: Tuning | None = None,
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id or new_worker_id()
        self.tuning = tuning or Tuning()
        settings = ctx.settings
        self.retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
        )
        self.rules = outcome.OutcomeRules(
            self.retry, timedelta(seconds=settings.disconnected_hold_s), rng or random.Random()
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
        self._scheduled_looked_at = float("-inf")
        self._replies_looked_at = float("-inf")
        # Claims, results and lease releases of all slots, each grouped.
        self.writer = ResultWriter(ctx, self.close_out)
        self.claimer = ClaimBatcher(ctx, self.worker_id, self.claim_limit)
        # Broadcasts cancelled while slots of this process held claimed recipients of
        # theirs, as of the last pass: those recipients are put back, never sent.
        self.cancelled: set[int] = set()
        # Each session's latest sends, for the error-rate brake.
        self.brake = ErrorRateBrake(settings.pause_error_rate)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Loop until ``stop`` is set, then let running sends finish and release every lease."""
        stop = stop or asyncio.Event()
        log.info(f"{BROADCAST_TAG} worker started", broadcast_id=None, worker_id=self.worker_id)
        renewer = asyncio.create_task(self._renew_until(stop), name="lease renewal")
        # Every worker process also sends the CRM's webhooks from the outbox.
        deliverer = asyncio.create_task(
            WebhookDeliverer(self.ctx, self.worker_id).run(stop), name="crm webhooks"
        )
        # Recipients of a dead worker become recoverable only when its lease expires,
        # so looking for them a few times per lease life is enough: the search reads
        # every recipient in flight, which with thousands of sessions is not cheap.
        recover_every = self.lease_ttl.total_seconds() / self.tuning.renewals_per_ttl
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
            if not stop.is_set():
                deliverer.cancel()
            await asyncio.gather(deliverer, return_exceptions=True)
            log.info(f"{BROADCAST_TAG} worker stopped", broadcast_id=None, worker_id=self.worker_id)

    async def _renew_until(self, stop: asyncio.Event) -> None:
        """Renew every held lease a few times per lease life, in one transaction each time.

        One statement for all slots, apart from their sends: a slot waiting for a
        database connection (thousands of slots share a small pool) must not lose
        its lease for that, or another worker would take over its session.
        """
        period = self.lease_ttl.total_seconds() / self.tuning.renewals_per_ttl
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

    def hold(self, slot: SlotRunner) -> None:
        self.held[(slot.session_id, slot.slot)] = slot

    def let_go(self, slot: SlotRunner) -> None:
        self.held.pop((slot.session_id, slot.slot), None)

    def count_claim(self) -> None:
        self.claims += 1

    async def renew_leases(self, slots: Sequence[SlotRunner] | None = None) -> None:
        """Extend the leases of ``slots`` (default: all held); a slot whose lease is gone
        is told so (``lost``). On a connection of its own, never queued behind sends."""
        held = list(self.held.values() if slots is None else slots)
        if not held:
            return
        started = time.monotonic()
        async with self.ctx.database.control_transaction() as db:
            renewed = await LeaseRepository(db).renew_slots(
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
        """One pass: recover orphans (if ``recover``), queue scheduled broadcasts that are
        due, the providers' background work (the simulator's receipts), early receipts and
        replies owed to numbers that opted out, then start slots for sessions with work."""
        if recover:
            await self.recover_orphans()
        now = self.ctx.clock.now()
        since = now.timestamp() - self._scheduled_looked_at
        if not 0 <= since < self.tuning.scheduled_every_s:  # due, or the clock went back
            async with self.ctx.database.transaction() as db:
                await LifecycleRepository(db).queue_due(now)
            self._scheduled_looked_at = now.timestamp()
        await self.note_cancelled()
        for plugin in PLUGINS.values():
            if plugin.background is not None:
                await plugin.background(self.ctx)
        if time.monotonic() - self._pending_looked_at >= self.tuning.pending_receipts_every_s:
            await apply_pending(self.ctx)
            self._pending_looked_at = time.monotonic()
        if time.monotonic() - self._replies_looked_at >= self.tuning.opt_out_replies_every_s:
            await send_due_replies(self.ctx)
            self._replies_looked_at = time.monotonic()
        if time.monotonic() - self._purged >= self.tuning.purge_every_s:
            async with self.ctx.database.transaction() as db:
                await IdempotencyRepository(db).purge_expired(self.ctx.clock.now())
            self._purged = time.monotonic()
        running = {key for key, task in self._slots.items() if not task.done()}
        async with self.ctx.database.transaction() as db:
            repo = LeaseRepository(db)
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
            acquired = await repo.acquire_slots(
                idle, self.worker_id, self.ctx.clock.now(), self.lease_ttl
            )
            # Each session's first new slot gets its first batch here, in one
            # statement for all sessions, so a thousand sessions start together.
            by_id = {row.id: row for row in rows}
            first_slots: dict[str, tuple[int, int]] = {}
            for (session_id, slot), epoch in sorted(acquired.items()):
                first_slots.setdefault(session_id, (slot, epoch))
            limits = {
                session_id: self.claim_limit(by_id[session_id], None) for session_id in first_slots
            }
            first = await ClaimRepository(db).claim_many(
                [
                    ClaimRequest(session_id, epoch, limits[session_id])
                    for session_id, (slot, epoch) in first_slots.items()
                ],
                self.worker_id,
                self.ctx.clock.now(),
            )
            # A session with nothing due now (all waiting for a retry time, say)
            # gives its slots back at once; a later pass looks again.
            idle_now = [(s, n, e) for (s, n), e in acquired.items() if s not in first]
            await repo.release_slots(idle_now)
        self.claims += len(first)
        for (session_id, slot), epoch in acquired.items():
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

    async def note_cancelled(self, slots: Sequence[SlotRunner] | None = None) -> None:
        """Find out which broadcasts whose recipients ``slots`` (default: every slot of
        this process) hold claimed were cancelled since, whichever process took the
        cancel. Every pass does it for all slots, so a cancel stops their sends within
        about ``worker_poll_s``; a paced slot also does it just before each send."""
        held = list(self.held.values() if slots is None else slots)
        in_hand = {b for slot in held for b in slot.batches.broadcasts_in_hand()}
        found: set[int] = set()
        if in_hand:
            async with self.ctx.database.transaction() as db:
                found = await LifecycleRepository(db).cancelled_among(sorted(in_hand))
        if slots is None:
            self.cancelled = found
        else:
            self.cancelled |= found

    def claim_limit(self, row: WhatsAppSession, seconds_per_send: float | None) -> int:
        """How many recipients one slot of the session claims at once.

        Without idempotent message ids, one at a time, so a crash leaves at most
        one unknown outcome per slot. Otherwise a fair part of a batch (slots of one
        session share the work), but only about ``Tuning.claim_seconds`` of it, so recipients
        are not shown as "sending" long before their turn.
        """
        provider = self.ctx.providers.for_kind(row.provider)
        if not provider.supports_client_message_id:
            return 1
        limit = max(1, self.ctx.settings.claim_batch // row.max_concurrency)
        pace = pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
        claim_seconds = self.tuning.claim_seconds
        if pace.paced:
            return min(limit, max(1, math.ceil(pace.rate_per_minute / 60 * claim_seconds)))
        if seconds_per_send is None:
            return min(limit, self.tuning.first_claim)
        if seconds_per_send > 0:
            return min(limit, max(1, int(claim_seconds / seconds_per_send)))
        return limit

    async def recover_orphans(self) -> None:
        """Resolve recipients left ``sending`` by a lease that expired (a dead worker)."""
        now = self.ctx.clock.now()
        async with self.ctx.database.transaction() as db:
            repo = ResultRepository(db)
            orphans = await repo.orphaned_sending(now, self.tuning.recovery_limit)
            if not orphans:
                return
            # One query for the sessions involved, not one per orphan.
            sessions = await LeaseRepository(db).get_sessions(sorted({o[2] for o in orphans}))
            kinds = {row.id: row.provider for row in sessions}
            results: list[Result] = []
            for recipient_id, broadcast_id, session_id, attempts in orphans:
                provider = self.ctx.providers.for_kind(kinds[session_id])
                result = outcome.orphan_result(
                    recipient_id,
                    broadcast_id,
                    attempts,
                    idempotent=provider.supports_client_message_id,
                    retry=self.retry,
                )
                if outcome.is_retry(result):
                    prometheus.record_retry(provider.kind, outcome.UNKNOWN_OUTCOME)
                results.append(result)
            touched = await repo.record(results, now, fenced=False)
            await self.close_out(db, touched)
        log.warning(
            f"{BROADCAST_TAG} recovered sends with unknown outcome",
            broadcast_id=sorted({o[1] for o in orphans}),
            count=len(orphans),
        )

    async def close_out(self, db: AsyncSession, broadcast_ids: set[int]) -> None:
        """After results: cancel what a cancelled broadcast re-queued, finish what is done."""
        now = self.ctx.clock.now()
        await LifecycleRepository(db).sweep_cancelled(broadcast_ids, now)
        await finish_done(db, broadcast_ids, now)

    async def pause_session(
        self, session_id: str, answer: SendResult, results: list[Result]
    ) -> None:
        """Write ``results`` and pause the session's broadcasts: an account-level error."""
        reason = answer.error_message or answer.error_code or "account blocked"
        paused = await self._pause(session_id, reason, results)
        log.warning(
            f"{BROADCAST_TAG} paused: account-level error from WhatsApp",
            broadcast_id=paused,
            session_id=session_id,
            error_code=answer.error_code,
        )

    async def brake_session(self, session_id: str, reason: str, results: list[Result]) -> None:
        """Write ``results`` and pause the session's broadcasts: too many of its latest
        sends failed for recipient reasons (``dispatch.brake``)."""
        paused = await self._pause(session_id, reason, results)
        log.warning(
            f"{BROADCAST_TAG} paused by the error-rate brake",
            broadcast_id=paused,
            session_id=session_id,
            reason=reason,
        )

    async def _pause(self, session_id: str, reason: str, results: list[Result]) -> list[int]:
        async with self.ctx.database.transaction() as db:
            now = self.ctx.clock.now()
            touched = await ResultRepository(db).record(results, now)
            paused = await LifecycleRepository(db).pause_session_broadcasts(session_id, reason, now)
            await self.close_out(db, touched)
        return paused
