"""The send log's SQL: a hot path, each flush of the log a few round trips at most."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.copy import copy_rows
from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import UTCDateTime, table_of
from wabroadcast.providers.simulator.models import ORIGINAL_SEND, SimulatorScenario, SimulatorSend
from wabroadcast.providers.simulator.repository.scenarios import scenario_columns
from wabroadcast.providers.simulator.rules import Scenario, scenario_from_row

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
    "text",
)


# Send records with their ids (PostgreSQL): a JSON array of [id, *SEND_COLUMNS],
# times in epoch seconds.
INSERT_SENDS_POSTGRES = text(
    """
    INSERT INTO simulator_sends (id, session_id, phone, client_message_id,
        provider_message_id, repeat, started_at, finished_at, outcome, error_code, deliver_at,
        answer_due_at, text)
    SELECT CAST(e ->> 0 AS bigint), e ->> 1, e ->> 2, e ->> 3, e ->> 4, CAST(e ->> 5 AS boolean),
        to_timestamp(CAST(e ->> 6 AS float8)), to_timestamp(CAST(e ->> 7 AS float8)),
        e ->> 8, e ->> 9, to_timestamp(CAST(e ->> 10 AS float8)),
        to_timestamp(CAST(e ->> 11 AS float8)), e ->> 12
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


class SendLogRepository:
    """The send log: sends started and ended, in-flight counts, repeats, and its pages."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_scenarios(self, session_ids: Sequence[str]) -> dict[str, tuple[Scenario, int]]:
        """The sessions' scenarios and in-flight high-water marks, locked in id order so
        concurrent flushes never deadlock.

        While held, no other process logs a send of these sessions: their
        in-flight counts and repeat checks cannot race.
        """
        table = table_of(SimulatorScenario)
        result = await self.session.execute(
            select(*scenario_columns(), table.c.in_flight_high_water_mark)
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
                select(*scenario_columns()).where(
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
                            row[11],
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
