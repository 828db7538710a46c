"""One send slot of one session: claim → send → write, at most one provider call at a time.

A slot owns its state: what it holds claimed (``SlotBatches``), its results on
their way to the database (``SlotResults``) and its lease. It asks its
dispatcher only for what every slot of the process shares, through ``SlotHost``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta

from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch import number_checks, outcome, pacing
from wabroadcast.dispatch.batches import SlotBatches
from wabroadcast.dispatch.call import CallResults, outgoing
from wabroadcast.dispatch.host import SlotHost
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.dispatch.repository.leases import LeaseRepository
from wabroadcast.dispatch.repository.lifecycle import LifecycleRepository
from wabroadcast.dispatch.repository.rows import Claimed, Result
from wabroadcast.dispatch.writer import SlotResults
from wabroadcast.domain.error_rate import pause_reason, recipient_level
from wabroadcast.observability import prometheus
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.providers.base import (
    OutgoingMessage,
    Pace,
    Provider,
    SendOutcome,
    SendResult,
    SessionRef,
)

log = get_logger("wabroadcast.dispatch")


class LeaseLost(Exception):
    """Our slot lease expired and may be someone else's: stop sending at once."""


class SlotRunner:
    """One send slot of one session: at most one provider call in flight at a time."""

    def __init__(
        self,
        host: SlotHost,
        session_id: str,
        slot: int,
        epoch: int,
        row: WhatsAppSession | None = None,
        claimed: Sequence[Claimed] = (),
        claim_limit: int = 0,
    ) -> None:
        self.host = host
        self.ctx = host.ctx
        self.tuning = host.tuning
        self.session_id = session_id
        self.slot = slot
        # The lease the dispatcher took for this slot (Dispatcher.tick).
        self.epoch = epoch
        self.batches = SlotBatches(host, (session_id, slot, epoch), row, claimed, claim_limit)
        self._results = SlotResults(host.writer, host.tuning)
        # When the lease was last known renewed (monotonic), and whether it is gone.
        self.renewed = time.monotonic()
        self.lost = False

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
        self.host.hold(self)
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
            self.host.let_go(self)
            try:
                # Everything this slot sent is written before its lease is given up.
                self._results.hand_over()
                await self._results.flushed()
            finally:
                await self.host.writer.write([], release=(self.session_id, self.slot, self.epoch))
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
        batches = self.batches
        batches.start()
        try:
            while True:
                if not batches.todo:
                    batch = await batches.next_batch()
                    if batch is None or not batch.claimed:
                        return
                    batches.queue(batch)
                if await self._send_next_call():
                    return
        finally:
            await self._unclaim(await batches.unsent())

    async def _send_next_call(self) -> bool:
        """One provider call over the queued recipients; True when the session must stop.

        Unpaced, with a provider that ignores a repeated message id, up to
        ``Tuning.send_call`` messages go out one after another in one call (as the
        slot's one connection would send them), joined by the next batch if it
        is claimed in time; otherwise one per call, each after its pacing turn.
        The session stops on a disconnect or an account-level error.
        """
        row = self.batches.row
        assert row is not None
        provider = self.ctx.providers.for_kind(row.provider)
        pace = pacing.effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
        if self.host.stopping.is_set():
            return True
        try:
            ref = self.ctx.session_refs.of(row)
        except (SecretKeyMissing, SecretsUnreadable) as exc:
            # Nothing can be sent without them: the claimed recipients go back, queued.
            log.error(
                f"{BROADCAST_TAG} cannot send: the session's secrets cannot be read",
                broadcast_id=sorted(self.batches.in_hand),
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
                await self.host.note_cancelled([self])
            many = provider.supports_client_message_id and not pace.paced
            # Taken off the queue before the call: if the call is interrupted, these
            # recipients stay ``sending`` and recovery decides, not a blind re-queue.
            call = self.batches.next_to_send(self._handed_at_once() if many else 1)
            if not call:
                return False  # all of them were cancelled
            checker = number_checks.checker_for(provider, row)
            on_whatsapp: frozenset[str] = frozenset()
            if checker is not None:
                try:
                    screened = await number_checks.screen(self.ctx, checker, ref, call, self.epoch)
                except BaseException:
                    self.batches.put_back(call)  # nothing was sent: they go back, queued
                    raise
                self._results.pending.extend(screened.not_on_whatsapp)
                call, on_whatsapp = screened.to_send, screened.on_whatsapp
                if not call:
                    return False  # none of them is on WhatsApp
            sent, attempted = await self._send_call(
                provider, ref, call, many=many, checked=checker is not None, known=on_whatsapp
            )
            # A call cut short attempted only the first ones: the rest go back.
            self.batches.put_back(call[attempted:])
            for result, answer in sent:
                if outcome.pauses(answer):
                    results = [*self._results.take_all(), result]
                    await self.host.pause_session(self.session_id, answer, results)
                    stop_session = True
                    continue
                self._results.pending.append(result)
                if outcome.stops_session(answer):
                    stop_session = True
            if not stop_session and await self._brake(sent, attempted):
                stop_session = True
            # Results are written in batches, but never held long: clients and
            # receipts should see a send soon after it happened. Only a full batch
            # waits for the one before it (so memory stays bounded when the
            # database is slower than the sends); otherwise sending goes on.
            if self._results.full:
                await self._results.flush()
        finally:
            self._results.hand_over_if_due()
            if self.batches.dropped:
                await self._unclaim(self.batches.take_dropped())
        return stop_session

    async def _brake(self, done: list[tuple[Result, SendResult]], attempted: int) -> bool:
        """Count the call's sends for the error-rate brake; True when it paused the
        session's broadcasts (too many of its latest sends failed for the numbers)."""
        row = self.batches.row
        assert row is not None
        # Positions reported while the call went on were sent.
        failed = [False] * (attempted - len(done))
        failed += [
            answer.outcome is SendOutcome.FAILED and recipient_level(answer.error_code)
            for _, answer in done
            if answer.outcome in (SendOutcome.SENT, SendOutcome.FAILED)
        ]
        brake = self.host.brake
        failures = brake.record(self.session_id, failed, row.pause_error_rate)
        if failures is None:
            return False
        reason = pause_reason(failures, brake.rate(row.pause_error_rate), brake.window)
        await self.host.brake_session(self.session_id, reason, self._results.take_all())
        return True

    def _handed_at_once(self) -> int:
        """How many queued recipients a call is handed at a time (``_more`` hands the
        rest as it goes): about ``Tuning.handed_at_once_s`` of sends, so that a cancel
        stops the sends of a slow call not handed yet, not only those of later calls."""
        per_send = self.batches.seconds_per_send
        if per_send is None:
            return 1
        send_call, at_once_s = self.tuning.send_call, self.tuning.handed_at_once_s
        if per_send * send_call <= at_once_s:
            return send_call
        return max(1, int(at_once_s / per_send))

    def _more(self, call: list[Claimed], ref: SessionRef) -> list[Claimed]:
        """Recipients that join ``call`` now that the provider has sent all it had: the
        queued ones, else the batch claimed ahead if it is ready and goes the same way
        (same provider, unpaced).

        It returns none, and the call ends, when the call is full, the worker is stopping, or the
        lease is lost or due for renewal (which ``_keep_lease`` does between calls).
        """
        send_call = self.tuning.send_call
        if (
            len(call) >= send_call
            or self.host.stopping.is_set()
            or self.lost
            or self._renewal_due()
        ):
            return []
        self.batches.queue_ready(ref.provider)
        more = self.batches.next_to_send(min(send_call - len(call), self._handed_at_once()))
        call.extend(more)
        return more

    async def _send_call(
        self,
        provider: Provider,
        ref: SessionRef,
        items: list[Claimed],
        *,
        many: bool,
        checked: bool = False,
        known: frozenset[str] = frozenset(),
    ) -> tuple[list[tuple[Result, SendResult]], int]:
        """One provider call for ``items`` (``send_many`` if ``many``, which the queued
        recipients may join as it goes, see ``_more``, unless the numbers were
        ``checked``: those joining would go out unchecked): the results of the
        recipients it attempted that were not written during the call (``on_result``),
        and how many it attempted. ``known``: the phones a check found on WhatsApp.

        Each result is logged as it comes (a long call's sent results as they arrive,
        the rest when the call returns); all are counted in the metrics just after.
        """
        started = time.monotonic()
        call = CallResults(self.session_id, ref, items, self.ctx.clock.now(), started)
        idempotent = provider.supports_client_message_id

        def on_result(position: int, answer: SendResult) -> None:
            # Sent during a long call: written while the call goes on, not after it.
            if answer.outcome is SendOutcome.SENT and position not in call.reported:
                self.batches.timed((time.monotonic() - started) / (position + 1))
                result = outcome.sent(items[position], answer, self.epoch)
                call.note(position, answer, result)
                self._results.add_now(result)

        def more() -> list[OutgoingMessage]:
            return outgoing(self._more(items, ref))

        unknown = False
        try:
            if many:
                grow = None if checked else more
                sent = await provider.send_many(ref, outgoing(items, known), on_result, grow)
            else:
                (message,) = outgoing(items, known)
                sent = [await provider.send(ref, message)]
        except Exception as exc:
            unknown = True
            sent = [outcome.unknown_answer(exc)] * len(items)
        elapsed = time.monotonic() - started
        self.batches.timed(elapsed / max(1, len(sent)))
        now, rules = self.ctx.clock.now(), self.host.rules
        done: list[tuple[Result, SendResult]] = []
        for position, (item, answer) in enumerate(zip(items, sent, strict=False)):
            if position in call.reported:
                continue  # sent, and being written as such, whatever the call did later
            result = outcome.result_for(
                item, answer, self.epoch, now, rules, unknown=unknown, idempotent=idempotent
            )
            if outcome.is_retry(result):
                prometheus.record_retry(ref.provider, answer.error_code)
            call.note(position, answer, result)
            done.append((result, answer))
        # Counted just after this step: the slot's next send starts first. When a
        # thousand slots finish a call at once, their metrics would otherwise hold
        # up every next send behind them.
        asyncio.get_running_loop().call_soon(call.count, elapsed / max(1, len(sent)))
        return done, len(sent)

    async def _unclaim(self, pending: Sequence[Claimed]) -> None:
        """Claimed recipients whose provider call never started go back to queued, and
        to cancelled if their broadcast was cancelled meanwhile."""
        if not pending:
            return
        async with self.ctx.database.transaction() as db:
            now = self.ctx.clock.now()
            await ClaimRepository(db).unclaim(pending, self.epoch, now)
            await LifecycleRepository(db).sweep_cancelled(
                {item.broadcast_id for item in pending}, now
            )

    async def _keep_lease(self) -> None:
        """Raise unless the lease is surely still ours; renew it here if nobody did lately.

        The dispatcher renews all held leases together every third of a lease's
        life; this renews only when that has not happened for two thirds of it
        (``run_until_idle`` runs no renewal loop, or the loop is stuck), and a slot
        whose lease was found gone stops before its next send.
        """
        if not self.lost and self._renewal_due():
            await self.host.renew_leases([self])
        if self.lost:
            raise LeaseLost(self.session_id)

    def _renewal_due(self) -> bool:
        """The dispatcher has not renewed this slot's lease for two thirds of its life."""
        period = self.host.lease_ttl.total_seconds() / self.tuning.renewals_per_ttl
        return time.monotonic() - self.renewed >= 2 * period

    async def _wait_for_pace(self, pace: Pace) -> None:
        jitter = timedelta(milliseconds=self.host.rules.rng.uniform(0, pace.jitter_ms))
        async with self.ctx.database.transaction() as db:
            repo = LeaseRepository(db)
            now = self.ctx.clock.now()
            start, next_at = pacing.reserve(
                await repo.lock_pace(self.session_id), now, pace, jitter
            )
            await repo.set_pace(self.session_id, next_at)
        wait = (start - now).total_seconds()
        # Results are not held through the wait (8 a minute is 7.5 s): a recipient
        # shows as sent, with its sent_at, soon after its send.
        self._results.hand_over_if_due(idle_for=max(0.0, wait))
        while wait > 0:
            step = min(wait, self.host.lease_ttl.total_seconds() / 3)
            await asyncio.sleep(step)
            wait -= step
            await self._keep_lease()
