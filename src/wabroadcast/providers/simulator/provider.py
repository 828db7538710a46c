"""The simulated gateway: the provider protocol over the send log and the scenario."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from wabroadcast.clock import Clock
from wabroadcast.db.engine import Database
from wabroadcast.providers.base import (
    STOPS_THE_CALL,
    ConnectionState,
    ConnectionStatus,
    MoreMessages,
    OutgoingMessage,
    ResultCallback,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.simulator.repository.scenarios import ScenarioRepository
from wabroadcast.providers.simulator.rules import (
    KIND,
    Scenario,
    classify,
    decide,
    deliver_at,
    not_on_whatsapp,
    scenario_from_row,
)
from wabroadcast.providers.simulator.send_log import CallStarted, LoggedSend, SendLog


def _result(send: LoggedSend, outcome: SendOutcome, code: str | None) -> SendResult:
    if outcome is SendOutcome.SENT:
        return SendResult(
            outcome, provider_message_id=send.provider_message_id, repeated=send.repeat
        )
    assert code is not None
    return SendResult(outcome, error_code=code, error_message=classify(code)[1])


class SimulatorDisconnected(Exception):
    """The simulated session is not connected, so it cannot check numbers."""


DISCONNECTED = SendResult(
    SendOutcome.DISCONNECTED,
    error_code="SESSION_DISCONNECTED",
    error_message=classify("SESSION_DISCONNECTED")[1],
)


class _Call:
    """One ``send_many`` call, driven by the send log's commits and one timer per send.

    Each step runs as a plain callback: a start committed, a send's latency over,
    the last end committed. No task wakes up between the sends of a call, which
    matters when a thousand sessions send at once on one event loop.
    """

    def __init__(
        self,
        log: SendLog,
        clock: Clock,
        loop: asyncio.AbstractEventLoop,
        session_id: str,
        messages: Sequence[OutgoingMessage],
        answer: asyncio.Future[list[SendResult]],
        on_result: ResultCallback | None = None,
        more: MoreMessages | None = None,
    ) -> None:
        self._log = log
        self._clock = clock
        self._loop = loop
        self._session_id = session_id
        self._pending = list(messages)
        self._answer = answer
        self._results: list[SendResult] = []
        # The end of the last send, logged with the next start (one commit, not two).
        self._ended: dict[str, object] | None = None
        # Results passed to ``on_result`` so far: each once its end is committed.
        self._on_result = on_result
        self._reported = 0
        self._began = 0.0
        # Asked for more messages when the pending ones are sent (None once the
        # call was stopped by a disconnect or an account-level error).
        self._more = more

    def next(self) -> None:
        """Start the next message (all of them, without latency), or finish."""
        if self._answer.done():
            return  # the caller went away (cancelled): send nothing more
        if not self._pending and self._more is not None:
            self._pending = list(self._more())
        if not self._pending:
            self._finish()
            return
        # The latency runs from here: logging the start is part of the trip.
        self._began = self._loop.time()
        ended, self._ended = self._ended, None
        self._log.start(self._session_id, self._pending, ended, self._started)

    def _started(self, started: CallStarted | Exception) -> None:
        if isinstance(started, Exception):
            self._fail(started)
            return
        try:
            self._go_on(started)
        except Exception as exc:
            self._fail(exc)

    def _go_on(self, started: CallStarted) -> None:
        self._report()
        if not started.sends:
            self._results.append(DISCONNECTED)
            self._stop()
            self.next()
            return
        self._pending = self._pending[len(started.sends) :]
        for send in started.sends:
            if send.outcome is None:
                due = self._began + started.scenario.latency_ms / 1000
                self._loop.call_at(due, self._latency_over, started.scenario, send)
                return
            self._record(send, send.outcome, send.error_code)
        self.next()

    def _latency_over(self, scenario: Scenario, send: LoggedSend) -> None:
        try:
            self._end(scenario, send)
        except Exception as exc:
            self._fail(exc)

    def _end(self, scenario: Scenario, send: LoggedSend) -> None:
        outcome, code = decide(scenario, send.message, send.repeat)
        finished = self._clock.now()
        self._ended = {
            "id": send.send_id,
            "finished_at": finished,
            "outcome": outcome.value,
            "error_code": code,
            "deliver_at": deliver_at(scenario, outcome, send.repeat, finished),
        }
        self._record(send, outcome, code)
        self.next()

    def _report(self) -> None:
        """Pass on the results whose sends' ends are committed (all recorded but the
        last, whose end is committed with the next start or by ``_finish``)."""
        if self._on_result is None:
            return
        settled = len(self._results) - (self._ended is not None)
        while self._reported < settled:
            self._on_result(self._reported, self._results[self._reported])
            self._reported += 1

    def _record(self, send: LoggedSend, outcome: SendOutcome, code: str | None) -> None:
        self._results.append(_result(send, outcome, code))
        if outcome in STOPS_THE_CALL:
            self._stop()

    def _stop(self) -> None:
        """Nothing more goes out in this call."""
        self._pending = []
        self._more = None

    def _finish(self) -> None:
        if self._ended is None:
            self._answer_with(self._results)
            return
        ended, self._ended = self._ended, None
        self._log.end(ended, self._ended_logged)

    def _ended_logged(self, error: Exception | None) -> None:
        if error is not None:
            self._fail(error)
        else:
            self._answer_with(self._results)

    def _answer_with(self, results: list[SendResult]) -> None:
        if not self._answer.done():
            self._answer.set_result(results)

    def _fail(self, error: Exception) -> None:
        if not self._answer.done():
            self._answer.set_exception(error)


@dataclass(frozen=True, slots=True)
class NumberCheckCall:
    """One ``check_numbers`` call, as the simulator received it."""

    session_id: str
    phones: tuple[str, ...]


class SimulatorProvider:
    """The simulated gateway; reads its scenario from the database on every call."""

    kind = KIND
    supports_client_message_id = True
    # Off unless a session turns it on (``check_numbers``): the demo and the
    # benchmarks send without checks, as the Cloud API does.
    checks_numbers_by_default = False

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._log = SendLog(database, clock)
        # The number checks this process made, in order (kept in memory, not in the
        # database like the send log: they are for tests to count).
        self.number_checks: list[NumberCheckCall] = []

    async def scenario(self, session_id: str) -> Scenario:
        async with self._database.transaction() as session:
            row = await ScenarioRepository(session).get(session_id)
        return Scenario() if row is None else scenario_from_row(row)

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        scenario = await self.scenario(session.session_id)
        if scenario.status_delay_ms:
            await asyncio.sleep(scenario.status_delay_ms / 1000)
        if scenario.connected:
            return ConnectionStatus(ConnectionState.CONNECTED)
        return ConnectionStatus(ConnectionState.DISCONNECTED, "simulator scenario: disconnected")

    async def check_numbers(self, session: SessionRef, phones: Sequence[str]) -> dict[str, bool]:
        """Every number is on WhatsApp but those the scenario fails with
        ``NOT_ON_WHATSAPP``; a disconnected session cannot check (raises)."""
        self.number_checks.append(NumberCheckCall(session.session_id, tuple(phones)))
        scenario = await self.scenario(session.session_id)
        if not scenario.connected:
            raise SimulatorDisconnected("simulator scenario: disconnected")
        return {phone: not not_on_whatsapp(scenario, phone) for phone in phones}

    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """Send one message: ``send_many`` with one."""
        (result,) = await self.send_many(session, [message])
        return result

    async def send_many(
        self,
        session: SessionRef,
        messages: Sequence[OutgoingMessage],
        on_result: ResultCallback | None = None,
        more: MoreMessages | None = None,
    ) -> list[SendResult]:
        """Send the messages one after another, then any ``more`` gives; stop after one
        that stops the call.

        Every send is logged as it starts (committed before its answer comes back)
        and as it ends, the scenario's latency after it began (or when its start
        was committed, if that took longer); a send's end is committed with the
        next send's start, and then its result goes to ``on_result`` if given. A
        client message id seen before is a repeat: it gets the first send's
        provider message id back and is not delivered again.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[SendResult]] = loop.create_future()
        _Call(
            self._log, self._clock, loop, session.session_id, messages, answer, on_result, more
        ).next()
        return await answer

    async def aclose(self) -> None:
        """Nothing to release: the send log's connections belong to the database."""
