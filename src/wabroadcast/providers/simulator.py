"""A simulated WhatsApp: the default provider for demos, tests and benchmarks.

It is a real implementation of the provider protocol, not a mock: its scenario
(connected, latencies, failing numbers, receipt delays) lives in the database
so the API process and every worker process see the same WhatsApp, and tests
control it over HTTP exactly as an operator would.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.copy import copy_rows
from wabroadcast.db.engine import Database, is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import (
    ORIGINAL_SEND,
    SimulatorScenario,
    SimulatorSend,
    UTCDateTime,
    table_of,
)
from wabroadcast.providers.base import (
    ConnectionState,
    ConnectionStatus,
    MoreMessages,
    OutgoingMessage,
    Receipt,
    ResultCallback,
    SendOutcome,
    SendResult,
    SessionRef,
)

KIND = "simulator"
# The send log writes on a connection of its own: it stands for WhatsApp's side,
# which does not wait in line behind the worker's own database work. Its commits
# do not wait for the disk either (``wait_for_flush=False``): a logged send must
# survive a kill -9 of its worker, which it does as soon as PostgreSQL has it,
# and every wave of a thousand sends waits for one, so a flush per commit would
# make the stand-in slower than the system it stands for.
SIMULATOR_LANE = "simulator"
SIMULATOR_ENDS_LANE = "simulator-ends"
DEFAULT_DELIVER_AFTER_MS = 2000
# A send counts as in flight from its start until its end is logged. One whose
# caller died (a worker's kill -9) never logs its end, but WhatsApp answered it
# all the same, its latency after it started: it stops counting ANSWER_GRACE
# after that, a margin for a live caller whose end is logged a little late (its
# timer waiting for a busy event loop, its commit). Otherwise a worker that took
# over a dead one's slot would seem to exceed the session's concurrency. Sends
# logged before that time was recorded stop counting IN_FLIGHT_WINDOW after
# their start (longer than the largest settable latency, 10 minutes).
ANSWER_GRACE = timedelta(seconds=2)
IN_FLIGHT_WINDOW = timedelta(minutes=11)

# The simulator's error codes and how each must be treated: the same table
# shape every provider module has for its own codes.
ERRORS: dict[str, tuple[SendOutcome, str]] = {
    "NOT_ON_WHATSAPP": (SendOutcome.FAILED, "This number is not on WhatsApp."),
    "INVALID_NUMBER": (SendOutcome.FAILED, "WhatsApp rejected the number as invalid."),
    "BLOCKED_BY_RECIPIENT": (SendOutcome.FAILED, "The recipient blocked this WhatsApp number."),
    "TIMEOUT": (SendOutcome.RETRY_LATER, "The gateway timed out before the message left."),
    "CONNECTION_REFUSED": (SendOutcome.RETRY_LATER, "The gateway refused the connection."),
    "RATE_LIMITED": (SendOutcome.RETRY_LATER, "WhatsApp asked us to slow down (429)."),
    "SERVER_ERROR": (SendOutcome.RETRY_LATER, "The gateway failed with a server error (5xx)."),
    "SESSION_DISCONNECTED": (SendOutcome.DISCONNECTED, "The WhatsApp session is not connected."),
    "ACCOUNT_RESTRICTED": (
        SendOutcome.ACCOUNT_BLOCKED,
        "WhatsApp restricted this account; sending is paused.",
    ),
    "SPAM_FLAGGED": (
        SendOutcome.ACCOUNT_BLOCKED,
        "WhatsApp flagged this account for spam; sending is paused.",
    ),
}
# What a failure drawn by ``fail_rate`` looks like: transient, so it is retried.
RANDOM_FAILURE_CODE = "SERVER_ERROR"


def classify(code: str) -> tuple[SendOutcome, str]:
    """How to treat a simulator error code; unknown codes are permanent failures."""
    return ERRORS.get(code, (SendOutcome.FAILED, f"WhatsApp refused the message ({code})."))


def fails_by_rate(client_message_id: str, fail_rate: float) -> bool:
    """Whether ``fail_rate`` fails this attempt: a deterministic draw per message id.

    Deterministic so a test or bench with a failure rate gives the same
    outcome every run, whichever worker or order the sends happen in.
    """
    if fail_rate <= 0:
        return False
    digest = hashlib.sha256(f"fail-rate:{client_message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fail_rate


@dataclass(slots=True)
class Scenario:
    """What the simulated WhatsApp of one session does."""

    connected: bool = True
    status_delay_ms: int = 0
    latency_ms: int = 0
    fail_numbers: dict[str, str] = field(default_factory=dict)
    fail_rate: float = 0.0
    deliver_after_ms: int | None = DEFAULT_DELIVER_AFTER_MS


class ScenarioFields(Protocol):
    """What a scenario is built from: its stored row, or a row of those columns."""

    connected: bool
    status_delay_ms: int
    latency_ms: int
    fail_numbers: dict[str, str]
    fail_rate: float
    deliver_after_ms: int | None


def scenario_from_row(row: ScenarioFields) -> Scenario:
    """The scenario of a stored row (an ORM object, or a row of its columns)."""
    return Scenario(
        connected=row.connected,
        status_delay_ms=row.status_delay_ms,
        latency_ms=row.latency_ms,
        fail_numbers=dict(row.fail_numbers),
        fail_rate=row.fail_rate,
        deliver_after_ms=row.deliver_after_ms,
    )


# Client message ids per repeat lookup (SQLite allows 32,766 parameters per statement).
ORIGINALS_CHUNK = 5000
# A send record's values, in SEND_COLUMNS order.
SendRow = tuple[object, ...]
# The columns a send record is written with.
SEND_COLUMNS = (
    "session_id",
    "phone",
    "client_message_id",
    "provider_message_id",
    "repeat",
    "started_at",
    "finished_at",
    "outcome",
    "error_code",
    "deliver_at",
    "answer_due_at",
)


# Send records with their ids (PostgreSQL): a JSON array of [id, *SEND_COLUMNS],
# times in epoch seconds.
INSERT_SENDS_POSTGRES = text(
    """
    INSERT INTO simulator_sends (id, session_id, phone, client_message_id,
        provider_message_id, repeat, started_at, finished_at, outcome, error_code, deliver_at,
        answer_due_at)
    SELECT CAST(e ->> 0 AS bigint), e ->> 1, e ->> 2, e ->> 3, e ->> 4, CAST(e ->> 5 AS boolean),
        to_timestamp(CAST(e ->> 6 AS float8)), to_timestamp(CAST(e ->> 7 AS float8)),
        e ->> 8, e ->> 9, to_timestamp(CAST(e ->> 10 AS float8)),
        to_timestamp(CAST(e ->> 11 AS float8))
    FROM json_array_elements(CAST(:sends AS json)) AS e
    """
)
# Ids for send records about to be written (PostgreSQL).
NEXT_SEND_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('simulator_sends', 'id')) "
    "FROM generate_series(1, :count)"
)


def _ends_json(ends: Sequence[dict[str, object]]) -> str:
    """Ends of sends as FINISH_AND_LOCK_POSTGRES takes them."""
    return json.dumps(
        [
            [
                end["id"],
                _epoch(end["finished_at"]),
                end["outcome"],
                end["error_code"],
                _epoch(end["deliver_at"]),
            ]
            for end in ends
        ]
    )


def _epoch(value: object) -> float | None:
    """A timestamp as JSON takes it: seconds since the epoch (to_timestamp reads it back)."""
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value.timestamp()


# The ends of any number of sends written and the sessions' scenario rows locked, in
# one statement (PostgreSQL). The ends are one JSON array of [id, finished_at,
# outcome, error_code, deliver_at] (times in epoch seconds), read once, written by a
# data-modifying WITH (always run in full); the lock reads only each row's version
# and high-water mark. With no sessions (``ids`` an empty array) it only writes ends.
FINISH_AND_LOCK_POSTGRES = text(
    """
    WITH finished AS (
        UPDATE simulator_sends AS s
        SET finished_at = to_timestamp(CAST(e ->> 1 AS float8)),
            outcome = e ->> 2,
            error_code = e ->> 3,
            deliver_at = to_timestamp(CAST(e ->> 4 AS float8))
        FROM json_array_elements(CAST(:ends AS json)) AS e
        WHERE s.id = CAST(e ->> 0 AS bigint)
    )
    SELECT session_id, CAST(xmin AS text) AS version, in_flight_high_water_mark
    FROM simulator_scenarios
    WHERE session_id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:ids AS json))))
    ORDER BY session_id
    FOR UPDATE
    """
)
# What a start needs to know once the scenarios are locked, in one statement
# (PostgreSQL): the sessions' sends in flight, earlier first sends of the message
# ids starting now (one index probe per pair, on the index of first sends) and ids
# for the new send records.
# ORIGINAL_SEND is a constant of the models (the predicate of the index it uses),
# not input.
LOOK_UP_POSTGRES = text(
    f"""
    SELECT
        (SELECT COALESCE(json_object_agg(f.session_id, f.n), '{{}}')
         FROM (
            SELECT session_id, count(*) AS n
            FROM simulator_sends
            WHERE session_id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:ids AS json))))
              AND finished_at IS NULL
              AND started_at > :since
              AND (answer_due_at IS NULL OR answer_due_at > :answered_before)
            GROUP BY session_id
         ) AS f) AS in_flight,
        (SELECT COALESCE(
            json_agg(json_build_array(s.session_id, s.client_message_id, s.provider_message_id)),
            '[]')
         FROM json_to_recordset(CAST(:wanted AS json))
            AS wanted(session_id varchar, client_message_id varchar)
         JOIN simulator_sends AS s
           ON s.session_id = wanted.session_id
          AND s.client_message_id = wanted.client_message_id
          AND {ORIGINAL_SEND}) AS originals,
        (SELECT COALESCE(json_agg(nextval(pg_get_serial_sequence('simulator_sends', 'id'))), '[]')
         FROM generate_series(1, :count)) AS send_ids
    """  # noqa: S608
).bindparams(
    bindparam("since", type_=UTCDateTime()), bindparam("answered_before", type_=UTCDateTime())
)


def _scenario_columns() -> tuple[ColumnElement[Any], ...]:
    """The session id and the columns a Scenario is built from (``scenario_from_row``)."""
    table = table_of(SimulatorScenario)
    return (
        table.c.session_id,
        table.c.connected,
        table.c.status_delay_ms,
        table.c.latency_ms,
        table.c.fail_numbers,
        table.c.fail_rate,
        table.c.deliver_after_ms,
    )


class SimulatorRepository:
    """All SQL of the simulator's own tables."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, session_id: str) -> SimulatorScenario | None:
        return await self.session.get(SimulatorScenario, session_id)

    async def lock_scenarios(self, session_ids: Sequence[str]) -> dict[str, tuple[Scenario, int]]:
        """The sessions' scenarios and in-flight high-water marks, locked in id order so
        concurrent flushes never deadlock.

        While held, no other process logs a send of these sessions: their
        in-flight counts and repeat checks cannot race.
        """
        table = table_of(SimulatorScenario)
        result = await self.session.execute(
            select(*_scenario_columns(), table.c.in_flight_high_water_mark)
            .where(one_of(self.session, SimulatorScenario.session_id, session_ids))
            .order_by(table.c.session_id)
            .with_for_update()
        )
        return {
            str(row.session_id): (scenario_from_row(row), int(row.in_flight_high_water_mark))
            for row in result.all()
        }

    async def _read_changed_scenarios(
        self, locked: Sequence[Any], read: dict[str, tuple[str, Scenario]]
    ) -> dict[str, tuple[Scenario, int]]:
        """Scenarios and high-water marks of the locked rows (session, version, mark),
        reading again only those whose version changed since ``read`` was filled."""
        versions = {str(session_id): str(version) for session_id, version, _ in locked}
        stale = [
            session_id
            for session_id, version in versions.items()
            if read.get(session_id, ("", None))[0] != version
        ]
        if stale:
            rows = await self.session.execute(
                select(*_scenario_columns()).where(
                    one_of(self.session, SimulatorScenario.session_id, stale)
                )
            )
            for row in rows.all():
                read[str(row.session_id)] = (versions[str(row.session_id)], scenario_from_row(row))
        return {
            str(session_id): (read[str(session_id)][1], int(mark)) for session_id, _, mark in locked
        }

    async def finish_and_lock(
        self,
        ends: Sequence[dict[str, object]],
        session_ids: Sequence[str],
        read: dict[str, tuple[str, Scenario]],
    ) -> dict[str, tuple[Scenario, int]]:
        """``finish_sends(ends)``, then ``lock_scenarios(session_ids)``.

        On PostgreSQL in one round trip (every round trip of the send log waits for
        its turn on an event loop that a thousand sending sessions keep busy), and
        reading only the scenarios whose row version (``xmin``, new on every update)
        changed since ``read`` was filled.
        """
        if not session_ids or not is_postgres(self.session):
            await self.finish_sends(ends)
            return await self.lock_scenarios(session_ids) if session_ids else {}
        locked = (
            await self.session.execute(
                FINISH_AND_LOCK_POSTGRES,
                {"ends": _ends_json(ends), "ids": json.dumps(list(session_ids))},
            )
        ).all()
        return await self._read_changed_scenarios(locked, read)

    async def look_up(
        self, session_ids: Sequence[str], now: datetime, wanted: Sequence[tuple[str, str]], ids: int
    ) -> tuple[dict[str, int], dict[str, dict[str, str]], list[int]]:
        """``in_flight`` and ``originals(wanted)``, and ``ids`` new send ids drawn ahead
        on PostgreSQL (one round trip there; on SQLite the ids come from the inserts)."""
        if not is_postgres(self.session):
            return await self.in_flight(session_ids, now), await self.originals(wanted), []
        pairs = [{"session_id": s, "client_message_id": c} for s, c in sorted(set(wanted))]
        in_flight, originals, send_ids = (
            await self.session.execute(
                LOOK_UP_POSTGRES,
                {
                    "ids": json.dumps(list(session_ids)),
                    "since": now - IN_FLIGHT_WINDOW,
                    "answered_before": now - ANSWER_GRACE,
                    "wanted": json.dumps(pairs),
                    "count": ids,
                },
            )
        ).one()
        found: dict[str, dict[str, str]] = defaultdict(dict)
        for session_id, client_message_id, provider_message_id in originals:
            found[str(session_id)][str(client_message_id)] = str(provider_message_id)
        return (
            {str(session_id): int(count) for session_id, count in in_flight.items()},
            found,
            [int(send_id) for send_id in send_ids],
        )

    async def in_flight(self, session_ids: Sequence[str], now: datetime) -> dict[str, int]:
        """Logged sends of each session that started and have not finished yet."""
        result = await self.session.execute(
            select(SimulatorSend.session_id, func.count())
            .where(
                one_of(self.session, SimulatorSend.session_id, session_ids),
                SimulatorSend.finished_at.is_(None),
                SimulatorSend.started_at > now - IN_FLIGHT_WINDOW,
                or_(
                    SimulatorSend.answer_due_at.is_(None),
                    SimulatorSend.answer_due_at > now - ANSWER_GRACE,
                ),
            )
            .group_by(SimulatorSend.session_id)
        )
        return {str(session_id): int(count) for session_id, count in result.all()}

    async def originals(self, sends: Sequence[tuple[str, str]]) -> dict[str, dict[str, str]]:
        """Earlier first sends with these (session, client message id): provider ids by
        session (on PostgreSQL, ``look_up`` finds them)."""
        wanted = set(sends)
        found: dict[str, dict[str, str]] = defaultdict(dict)
        ids = sorted({client_message_id for _, client_message_id in wanted})
        sessions = sorted({session_id for session_id, _ in wanted})
        for offset in range(0, len(ids), ORIGINALS_CHUNK):
            result = await self.session.execute(
                select(
                    SimulatorSend.session_id,
                    SimulatorSend.client_message_id,
                    SimulatorSend.provider_message_id,
                ).where(
                    SimulatorSend.session_id.in_(sessions),
                    SimulatorSend.client_message_id.in_(ids[offset : offset + ORIGINALS_CHUNK]),
                    text(ORIGINAL_SEND),
                )
            )
            for session_id, client_message_id, provider_message_id in result.all():
                if (session_id, client_message_id) in wanted:
                    found[str(session_id)][str(client_message_id)] = str(provider_message_id)
        return found

    async def add_sends(
        self, rows: Sequence[SendRow], *, with_ids: bool, ids: Sequence[int] = ()
    ) -> list[int]:
        """Insert send records (values in SEND_COLUMNS order); their ids in the order
        given when ``with_ids`` (on PostgreSQL, ``ids`` drawn ahead are used if given)."""
        if not rows:
            return []
        table = table_of(SimulatorSend)
        if not is_postgres(self.session):
            values = [dict(zip(SEND_COLUMNS, row, strict=True)) for row in rows]
            if with_ids:
                result = await self.session.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), values
                )
                return [int(send_id) for send_id in result.scalars()]
            await self.session.execute(insert(table), values)
            return []
        if not with_ids:
            await copy_rows(self.session, table.name, SEND_COLUMNS, rows)
            return []
        # Ids drawn from the table's own sequence (ahead, or in one query now), then
        # one INSERT of a JSON array: a single round trip, where COPY takes two.
        if len(ids) < len(rows):
            result = await self.session.execute(NEXT_SEND_IDS, {"count": len(rows)})
            ids = [int(send_id) for send_id in result.scalars()]
        ids = ids[: len(rows)]  # a sequence may skip the ids drawn but not used
        await self.session.execute(
            INSERT_SENDS_POSTGRES,
            {
                "sends": json.dumps(
                    [
                        [
                            send_id,
                            *row[:5],
                            _epoch(row[5]),
                            _epoch(row[6]),
                            *row[7:9],
                            _epoch(row[9]),
                            _epoch(row[10]),
                        ]
                        for send_id, row in zip(ids, rows, strict=True)
                    ]
                )
            },
        )
        return list(ids)

    async def finish_sends(self, ends: Sequence[dict[str, object]]) -> None:
        """Record the end of sends that took a while: keyed by ``id``."""
        if not ends:
            return
        if not is_postgres(self.session):
            await self.session.execute(update(SimulatorSend), list(ends))
            return
        await self.session.execute(
            FINISH_AND_LOCK_POSTGRES, {"ends": _ends_json(ends), "ids": "[]"}
        )

    async def raise_high_water_marks(self, marks: Mapping[str, int]) -> None:
        """Raise each session's high-water mark to ``marks[session]``, in one executemany."""
        if not marks:
            return
        table = table_of(SimulatorScenario)
        await self.session.execute(
            update(table)
            .where(
                table.c.session_id == bindparam("sid"),
                table.c.in_flight_high_water_mark < bindparam("mark"),
            )
            .values(in_flight_high_water_mark=bindparam("mark")),
            [{"sid": session_id, "mark": mark} for session_id, mark in sorted(marks.items())],
        )

    async def sends(
        self, session_id: str, *, after_id: int | None, limit: int
    ) -> list[SimulatorSend]:
        query = select(SimulatorSend).where(SimulatorSend.session_id == session_id)
        if after_id is not None:
            query = query.where(SimulatorSend.id > after_id)
        result = await self.session.execute(query.order_by(SimulatorSend.id).limit(limit))
        return list(result.scalars())

    async def ensure(self, session_id: str, clock: Clock) -> SimulatorScenario:
        row = await self.get(session_id)
        if row is None:
            defaults = Scenario()
            row = SimulatorScenario(
                session_id=session_id,
                connected=defaults.connected,
                status_delay_ms=defaults.status_delay_ms,
                latency_ms=defaults.latency_ms,
                fail_numbers=defaults.fail_numbers,
                fail_rate=defaults.fail_rate,
                deliver_after_ms=defaults.deliver_after_ms,
                updated_at=clock.now(),
            )
            self.session.add(row)
            await self.session.flush()
        return row


# Outcomes after which a provider call sends nothing more.
STOPS_THE_CALL = frozenset({SendOutcome.DISCONNECTED, SendOutcome.ACCOUNT_BLOCKED})


def decide(
    scenario: Scenario, message: OutgoingMessage, repeat: bool
) -> tuple[SendOutcome, str | None]:
    """What the simulated WhatsApp answers; a repeat is acknowledged, never sent again."""
    if repeat:
        return SendOutcome.SENT, None
    to, client_message_id = message.to, message.client_message_id
    if to in scenario.fail_numbers:
        code = scenario.fail_numbers[to]
        return classify(code)[0], code
    if fails_by_rate(client_message_id, scenario.fail_rate):
        return classify(RANDOM_FAILURE_CODE)[0], RANDOM_FAILURE_CODE
    return SendOutcome.SENT, None


def deliver_at(
    scenario: Scenario, outcome: SendOutcome, repeat: bool, at: datetime
) -> datetime | None:
    """When the "delivered" receipt of a send is due, if it gets one."""
    if outcome is not SendOutcome.SENT or repeat or scenario.deliver_after_ms is None:
        return None
    return at + timedelta(milliseconds=scenario.deliver_after_ms)


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
        # Scenarios as last read, with their row versions (SimulatorRepository.lock_scenarios).
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
                    await SimulatorRepository(db).finish_sends([end.values for end in ends])
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
            repo = SimulatorRepository(db)
            session_ids = sorted({call.session_id for call in calls})
            scenarios = await repo.finish_and_lock(
                [call.ended for call in calls if call.ended is not None],
                session_ids,
                self._scenarios,
            )
            for session_id in session_ids:
                if session_id not in scenarios:
                    row = await repo.ensure(session_id, self._clock)
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


def _result(send: LoggedSend, outcome: SendOutcome, code: str | None) -> SendResult:
    if outcome is SendOutcome.SENT:
        return SendResult(
            outcome, provider_message_id=send.provider_message_id, repeated=send.repeat
        )
    assert code is not None
    return SendResult(outcome, error_code=code, error_message=classify(code)[1])


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


class SimulatorProvider:
    """The simulated gateway; reads its scenario from the database on every call."""

    kind = KIND
    supports_client_message_id = True

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._log = SendLog(database, clock)

    async def scenario(self, session_id: str) -> Scenario:
        async with self._database.transaction() as session:
            row = await SimulatorRepository(session).get(session_id)
        return Scenario() if row is None else scenario_from_row(row)

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        scenario = await self.scenario(session.session_id)
        if scenario.status_delay_ms:
            await asyncio.sleep(scenario.status_delay_ms / 1000)
        if scenario.connected:
            return ConnectionStatus(ConnectionState.CONNECTED)
        return ConnectionStatus(ConnectionState.DISCONNECTED, "simulator scenario: disconnected")

    async def send(
        self, session: SessionRef, to: str, text: str, client_message_id: str
    ) -> SendResult:
        """Send one message: ``send_many`` with one."""
        (result,) = await self.send_many(session, [OutgoingMessage(to, text, client_message_id)])
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

    def parse_webhook(self, secret: str, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        """Receipts posted for a simulator session, signed with its webhook secret."""
        from wabroadcast.receipts.simulator_webhook import parse_simulator_webhook

        return parse_simulator_webhook(secret, headers, body)
