"""The simulator's send log: every send the simulated WhatsApp receives, group-committed.

The log is what makes the simulator a WhatsApp and not a mock: a send is in it
before its answer comes back, so a worker killed afterwards cannot undo it,
and a repeated client message id is recognised across every process.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from wabroadcast.clock import Clock
from wabroadcast.db.engine import Database
from wabroadcast.providers.base import STOPS_THE_CALL, OutgoingMessage, SendOutcome
from wabroadcast.providers.simulator.repository.scenarios import ScenarioRepository
from wabroadcast.providers.simulator.repository.send_log import SendLogRepository, SendRow
from wabroadcast.providers.simulator.rules import (
    Scenario,
    decide,
    deliver_at,
    scenario_from_row,
)

# The send log writes on a connection of its own: it stands for WhatsApp's side,
# which does not wait in line behind the worker's own database work. Its commits
# do not wait for the disk either (``wait_for_flush=False``): a logged send must
# survive a kill -9 of its worker, which it does as soon as PostgreSQL has it,
# and every wave of a thousand sends waits for one, so a flush per commit would
# make the stand-in slower than the system it stands for.
SIMULATOR_LANE = "simulator"
SIMULATOR_ENDS_LANE = "simulator-ends"


@dataclass(slots=True)
class LoggedSend:
    """One message as the simulator logged it when it started (its id once written)."""

    message: OutgoingMessage
    send_id: int | None
    provider_message_id: str
    repeat: bool
    # Known when the send finished in the same instant it started (no latency).
    outcome: SendOutcome | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class CallStarted:
    """What the start of a provider call found: the scenario and the sends it logged.

    With no latency every message of the call is logged as started and finished
    (up to the first that stops the call); with latency only the first message
    starts, and the caller ends it after waiting. A disconnected session logs none.
    """

    scenario: Scenario
    sends: list[LoggedSend]


@dataclass(slots=True)
class _PendingCall:
    session_id: str
    messages: Sequence[OutgoingMessage]
    # Called once the start is committed, with what it found, or with the error.
    started: Callable[[CallStarted | Exception], None]
    # The end of the caller's previous send, written just before this start.
    ended: dict[str, object] | None = None


@dataclass(slots=True)
class _PendingEnd:
    values: dict[str, object]
    done: Callable[[Exception | None], None]


class SendLog:
    """Group commit of the send log: one transaction for all starts meanwhile.

    Each call waits until its start is committed before it may go on, so the log
    always holds every send that reached the simulated WhatsApp (a worker killed
    afterwards cannot undo it). Starts that arrive while a transaction runs are
    written together by the next one, each after the end of its caller's previous
    send (so that send is over before the next one counts as in flight). The end
    of a call's last send has its own group commit, on a connection of its own: a
    caller waits for it before it gets its answer, and when a thousand calls end
    at once it should not wait behind their next starts.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._calls: list[_PendingCall] = []
        self._ends: list[_PendingEnd] = []
        self._writer: asyncio.Task[None] | None = None
        self._end_writer: asyncio.Task[None] | None = None
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_counter = itertools.count(1)
        # Scenarios as last read, with their row versions (SendLogRepository.lock_scenarios).
        self._scenarios: dict[str, tuple[str, Scenario]] = {}

    def start(
        self,
        session_id: str,
        messages: Sequence[OutgoingMessage],
        ended: dict[str, object] | None,
        started: Callable[[CallStarted | Exception], None],
    ) -> None:
        """Log the start of the first of ``messages`` (all of them, without latency),
        after the end of the caller's previous send if given; ``started`` is called
        once that is committed."""
        self._calls.append(_PendingCall(session_id, messages, started, ended))
        self._wake()

    def end(self, values: dict[str, object], done: Callable[[Exception | None], None]) -> None:
        """Log the end of a caller's last send; ``done`` is called once it is committed."""
        self._ends.append(_PendingEnd(values, done))
        if self._end_writer is None or self._end_writer.done():
            self._end_writer = asyncio.create_task(self._write_ends(), name="simulator ends")

    def _wake(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="simulator send log")

    async def _write_ends(self) -> None:
        while self._ends:
            ends, self._ends = self._ends, []
            try:
                async with self._database.control_transaction(
                    SIMULATOR_ENDS_LANE, wait_for_flush=False
                ) as db:
                    await SendLogRepository(db).finish_sends([end.values for end in ends])
            except Exception as exc:
                for pending_end in ends:
                    pending_end.done(exc)
                continue
            for pending_end in ends:
                pending_end.done(None)

    async def _write_all(self) -> None:
        while self._calls:
            calls, self._calls = self._calls, []
            try:
                started = await self._write(calls)
            except Exception as exc:
                for call in calls:
                    call.started(exc)
                continue
            for call, result in zip(calls, started, strict=True):
                call.started(result)

    async def _write(self, calls: Sequence[_PendingCall]) -> list[CallStarted]:
        now = self._clock.now()
        results: dict[int, CallStarted] = {}
        async with self._database.control_transaction(SIMULATOR_LANE, wait_for_flush=False) as db:
            repo = SendLogRepository(db)
            session_ids = sorted({call.session_id for call in calls})
            scenarios = await repo.finish_and_lock(
                [call.ended for call in calls if call.ended is not None],
                session_ids,
                self._scenarios,
            )
            for session_id in session_ids:
                if session_id not in scenarios:
                    row = await ScenarioRepository(db).ensure(session_id, self._clock)
                    scenarios[session_id] = (scenario_from_row(row), row.in_flight_high_water_mark)
            by_session: dict[str, list[tuple[int, _PendingCall]]] = defaultdict(list)
            for n, call in enumerate(calls):
                by_session[call.session_id].append((n, call))
            # Only the messages that start now are looked up: with latency, a call's
            # first one (the rest start in later transactions, one after another).
            starting = [
                (call.session_id, message.client_message_id)
                for call in calls
                for message in _starting_now(scenarios[call.session_id][0], call)
            ]
            # Sends that end later are finished by id: their ids are needed now.
            waiting = any(
                scenario.connected and scenario.latency_ms > 0
                for scenario, _ in (scenarios[session_id] for session_id in session_ids)
            )
            in_flight, known, drawn = await repo.look_up(
                session_ids, now, starting, len(starting) if waiting else 0
            )
            records: list[SendRow] = []
            logged: list[tuple[int, int]] = []  # (call index, position in its sends)
            marks: dict[str, int] = {}
            for session_id in session_ids:
                scenario, high_water_mark = scenarios[session_id]
                mine = by_session[session_id]
                if not scenario.connected:
                    for n, _call in mine:
                        results[n] = CallStarted(scenario, [])
                    continue
                mark = in_flight.get(session_id, 0) + len(mine)
                if mark > high_water_mark:
                    marks[session_id] = mark
                originals = known.get(session_id, {})
                for n, call in mine:
                    sends = self._start_call(scenario, call, originals, now, records)
                    logged.extend((n, position) for position in range(len(sends)))
                    results[n] = CallStarted(scenario, sends)
            send_ids = await repo.add_sends(records, with_ids=waiting, ids=drawn)
            await repo.raise_high_water_marks(marks)
        for (n, position), send_id in zip(logged, send_ids, strict=False):
            results[n].sends[position].send_id = send_id
        return [results[n] for n in range(len(calls))]

    def _new_provider_id(self) -> str:
        # A random prefix per process and a counter: unique across processes
        # without paying for a random UUID per message.
        return f"sim-{self._id_prefix}-{next(self._id_counter):x}"

    def _start_call(
        self,
        scenario: Scenario,
        call: _PendingCall,
        originals: dict[str, str],
        now: datetime,
        records: list[SendRow],
    ) -> list[LoggedSend]:
        """Log the call's sends that start now (``_starting_now``)."""
        at_once = scenario.latency_ms == 0
        answer_due = now + timedelta(milliseconds=scenario.latency_ms)
        sends: list[LoggedSend] = []
        for message in _starting_now(scenario, call):
            original = originals.get(message.client_message_id)
            repeat = original is not None
            provider_message_id = original or self._new_provider_id()
            outcome: SendOutcome | None = None
            code: str | None = None
            if at_once:
                outcome, code = decide(scenario, message, repeat)
            if outcome in (None, SendOutcome.SENT):
                # Accepted, or with WhatsApp until its latency is over.
                originals.setdefault(message.client_message_id, provider_message_id)
            records.append(
                (
                    call.session_id,
                    message.to,
                    message.client_message_id,
                    provider_message_id,
                    repeat,
                    now,
                    now if at_once else None,
                    outcome.value if outcome else None,
                    code,
                    deliver_at(scenario, outcome, repeat, now) if outcome else None,
                    answer_due,
                    message.text,
                )
            )
            sends.append(LoggedSend(message, None, provider_message_id, repeat, outcome, code))
            if outcome in STOPS_THE_CALL:
                break
        return sends


def _starting_now(scenario: Scenario, call: _PendingCall) -> Sequence[OutgoingMessage]:
    """A call's messages that start in this transaction: all of them when they take no
    time (a disconnected session starts none), else only the first."""
    if not scenario.connected:
        return []
    return call.messages if scenario.latency_ms == 0 else call.messages[:1]
