"""The dispatcher: takes queued recipients and sends them, exactly once, within limits.

One process serves many sessions at once (one asyncio task per leased send
slot), so a slow session never holds up the others. Every step that matters
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

from wabroadcast.broadcasts.repository import IdempotencyRepository
from wabroadcast.context import AppContext
from wabroadcast.dispatch import pacing
from wabroadcast.dispatch.repository import Claimed, DispatchRepository, Result
from wabroadcast.dispatch.retry import RetryPolicy
from wabroadcast.domain.phones import mask_phone
from wabroadcast.domain.status import RecipientStatus, final_broadcast_status
from wabroadcast.observability.logging import BROADCAST_TAG, SEND_TAG, get_logger
from wabroadcast.providers.base import Provider, SendOutcome, SendResult, SessionRef
from wabroadcast.receipts.service import deliver_due_simulator_receipts

log = get_logger("wabroadcast.dispatch")

UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
UNKNOWN_OUTCOME_MESSAGE = (
    "The worker stopped during the send, so it is unknown whether WhatsApp received the "
    "message; it is not sent again automatically, so it cannot arrive twice."
)
RECOVERY_LIMIT = 1000
FLUSH_EVERY = 50
FLUSH_AFTER_S = 0.25
# Expired Idempotency-Key rows are deleted this often (by any worker).
PURGE_EVERY_S = 300.0


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
        # Batches claimed so far by this process; lets callers see progress.
        self.claims = 0
        self.stopping = asyncio.Event()
        self._purged = float("-inf")

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Loop until ``stop`` is set, then let running sends finish and release every lease."""
        stop = stop or asyncio.Event()
        log.info(f"{BROADCAST_TAG} worker started", broadcast_id=None, worker_id=self.worker_id)
        try:
            while not stop.is_set():
                try:
                    await self.tick()
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
            log.info(f"{BROADCAST_TAG} worker stopped", broadcast_id=None, worker_id=self.worker_id)

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

    async def tick(self) -> None:
        """One pass: recover orphans, deliver due receipts, start slots for sessions with work."""
        await self.recover_orphans()
        await deliver_due_simulator_receipts(self.ctx)
        if time.monotonic() - self._purged >= PURGE_EVERY_S:
            async with self.ctx.database.transaction() as db:
                await IdempotencyRepository(db).purge_expired(self.ctx.clock.now())
            self._purged = time.monotonic()
        running = {key for key, task in self._slots.items() if not task.done()}
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            session_ids = await repo.sessions_with_work()
            # One query and one insert for all sessions, not one transaction each:
            # a worker may serve thousands of sessions.
            rows = await repo.get_sessions(session_ids)
            await repo.ensure_slots_many([(r.id, r.tenant_id, r.max_concurrency) for r in rows])
        for row in rows:
            for slot in range(row.max_concurrency):
                key = (row.id, slot)
                if key in running:
                    continue
                self._slots[key] = asyncio.create_task(
                    SlotRunner(self, row.id, slot).run(), name=f"slot {row.id}#{slot}"
                )
        self._slots = {key: task for key, task in self._slots.items() if not task.done()}

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
        for broadcast in await repo.finishable(broadcast_ids):
            sent = broadcast.sent_count + broadcast.delivered_count + broadcast.read_count
            status = final_broadcast_status(sent, broadcast.failed_count)
            if await repo.finish(broadcast.id, broadcast.status, status, now):
                log.info(
                    f"{BROADCAST_TAG} finished",
                    broadcast_id=broadcast.id,
                    status=status.value,
                    queued_count=0,
                    sent_count=sent,
                    failed_count=broadcast.failed_count,
                    cancelled_count=broadcast.cancelled_count,
                )


class LeaseLost(Exception):
    """Our slot lease expired and may be someone else's: stop sending at once."""


class SlotRunner:
    """One send slot of one session: at most one provider call in flight at a time."""

    def __init__(self, dispatcher: Dispatcher, session_id: str, slot: int) -> None:
        self.d = dispatcher
        self.ctx = dispatcher.ctx
        self.session_id = session_id
        self.slot = slot
        self.epoch = 0
        self._renewed = 0.0

    async def run(self) -> None:
        """Lease the slot, send while there is due work, release it; never raise.

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
        ctx = self.ctx
        async with ctx.database.transaction() as db:
            epoch = await DispatchRepository(db).acquire_slot(
                self.session_id, self.slot, self.d.worker_id, ctx.clock.now(), self.d.lease_ttl
            )
        if epoch is None:
            return
        self.epoch = epoch
        self._renewed = time.monotonic()
        try:
            await self._loop()
        except LeaseLost:
            log.warning(
                f"{BROADCAST_TAG} lease lost; stopping this slot",
                broadcast_id=None,
                session_id=self.session_id,
                slot=self.slot,
                epoch=self.epoch,
            )
        finally:
            async with ctx.database.transaction() as db:
                await DispatchRepository(db).release_slot(self.session_id, self.slot, self.epoch)

    async def _loop(self) -> None:
        ctx = self.ctx
        while not self.d.stopping.is_set():
            async with ctx.database.transaction() as db:
                repo = DispatchRepository(db)
                row = await repo.get_session(self.session_id)
                if row is None or self.slot >= row.max_concurrency:
                    return
                provider = ctx.providers.for_kind(row.provider)
                pace = pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
                # Without idempotent message ids, commit one recipient at a time so a
                # crash leaves at most one unknown outcome per slot.
                # Slots of one session share the work: each takes a fair part of a batch.
                limit = (
                    max(1, ctx.settings.claim_batch // row.max_concurrency)
                    if provider.supports_client_message_id
                    else 1
                )
                if pace.paced:
                    # A paced slot claims about two seconds of work, so recipients are
                    # not shown as "sending" long before their turn.
                    limit = min(limit, max(1, math.ceil(pace.rate_per_minute / 30)))
                claimed = await repo.claim(
                    self.session_id,
                    holder=self.d.worker_id,
                    epoch=self.epoch,
                    now=ctx.clock.now(),
                    limit=limit,
                )
            if not claimed:
                return
            self.d.claims += 1
            ref = SessionRef(row.id, row.tenant_id, row.provider, {})
            if await self._send_all(claimed, provider, ref, pace):
                return

    async def _send_all(
        self, claimed: Sequence[Claimed], provider: Provider, ref: SessionRef, pace: pacing.Pace
    ) -> bool:
        """Send each claimed recipient; True when the session must stop (disconnected, blocked)."""
        results: list[Result] = []
        started_calls = 0
        stop_session = False
        flushed = time.monotonic()
        try:
            for item in claimed:
                if self.d.stopping.is_set() or stop_session:
                    break
                await self._keep_lease()
                if pace.paced:
                    await self._wait_for_pace(pace)
                # Counted before the call: if the call is interrupted, this recipient
                # stays ``sending`` and recovery decides, instead of a blind re-queue.
                started_calls += 1
                result, sent = await self._send_one(provider, ref, item)
                results.append(result)
                if sent.outcome is SendOutcome.ACCOUNT_BLOCKED:
                    await self._pause_session(sent, results)
                    results = []
                    stop_session = True
                elif sent.outcome is SendOutcome.DISCONNECTED:
                    stop_session = True
                # Results are written in batches, but never held long: clients and
                # receipts should see a send soon after it happened.
                if len(results) >= FLUSH_EVERY or time.monotonic() - flushed >= FLUSH_AFTER_S:
                    await self._flush(results)
                    results = []
                    flushed = time.monotonic()
        finally:
            await self._flush(results)
            await self._unclaim(claimed[started_calls:])
        return stop_session

    async def _send_one(
        self, provider: Provider, ref: SessionRef, item: Claimed
    ) -> tuple[Result, SendResult]:
        started = time.monotonic()
        unknown = False
        try:
            sent = await provider.send(ref, item.phone, item.message, item.client_message_id)
        except Exception as exc:
            # The provider could not say what happened: the message may have left.
            unknown = True
            sent = SendResult(
                SendOutcome.RETRY_LATER,
                error_code=UNKNOWN_OUTCOME,
                error_message=f"The provider call failed: {exc!r}"[:500],
            )
        result = self._result_for(
            item, sent, unknown=unknown, idempotent=provider.supports_client_message_id
        )
        log.info(
            f"{SEND_TAG} attempt",
            broadcast_id=item.broadcast_id,
            session_id=self.session_id,
            phone=mask_phone(item.phone),
            attempt=item.attempts,
            outcome=sent.outcome.value,
            status=result.status.value,
            error_code=sent.error_code,
            repeated=sent.repeated,
            latency_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result, sent

    async def _unclaim(self, pending: Sequence[Claimed]) -> None:
        """Claimed recipients whose provider call never started go back to queued."""
        if not pending:
            return
        async with self.ctx.database.transaction() as db:
            await DispatchRepository(db).unclaim(pending, self.epoch, self.ctx.clock.now())

    def _result_for(
        self, item: Claimed, sent: SendResult, *, unknown: bool, idempotent: bool
    ) -> Result:
        now = self.ctx.clock.now()
        ids = (item.recipient_id, item.broadcast_id, self.epoch)
        if sent.outcome is SendOutcome.SENT:
            return Result(*ids, RecipientStatus.SENT, provider_message_id=sent.provider_message_id)
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

    async def _flush(self, results: list[Result]) -> None:
        if not results:
            return
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            touched = await repo.record(results, self.ctx.clock.now())
            await self.d.close_out(repo, touched)

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
        """Renew the slot lease once a third of its life is gone; raise if it was lost."""
        if time.monotonic() - self._renewed < self.d.lease_ttl.total_seconds() / 3:
            return
        async with self.ctx.database.transaction() as db:
            ok = await DispatchRepository(db).renew_slot(
                self.session_id, self.slot, self.epoch, self.ctx.clock.now(), self.d.lease_ttl
            )
        if not ok:
            raise LeaseLost(self.session_id)
        self._renewed = time.monotonic()

    async def _wait_for_pace(self, pace: pacing.Pace) -> None:
        jitter = timedelta(milliseconds=self.d.rng.uniform(0, pace.jitter_ms))
        async with self.ctx.database.transaction() as db:
            repo = DispatchRepository(db)
            now = self.ctx.clock.now()
            start, next_at = pacing.reserve(
                await repo.lock_pace(self.session_id), now, pace, jitter
            )
            await repo.set_pace(self.session_id, next_at)
        wait = (start - now).total_seconds()
        while wait > 0:
            step = min(wait, self.d.lease_ttl.total_seconds() / 3)
            await asyncio.sleep(step)
            wait -= step
            await self._keep_lease()
