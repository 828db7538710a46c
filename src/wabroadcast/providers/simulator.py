"""A simulated WhatsApp: the default provider for demos, tests and benchmarks.

It is a real implementation of the provider protocol, not a mock: its scenario
(connected, latencies, failing numbers, receipt delays) lives in the database
so the API process and every worker process see the same WhatsApp, and tests
control it over HTTP exactly as an operator would.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.engine import Database
from wabroadcast.db.models import SimulatorScenario, SimulatorSend
from wabroadcast.providers.base import (
    ConnectionState,
    ConnectionStatus,
    Receipt,
    SendOutcome,
    SendResult,
    SessionRef,
)

KIND = "simulator"
DEFAULT_DELIVER_AFTER_MS = 2000
# A send whose caller died never records its end; this long after it started
# it no longer counts as in flight (longer than the largest settable latency,
# 10 minutes, so a real in-flight send is never missed).
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


def scenario_from_row(row: SimulatorScenario) -> Scenario:
    return Scenario(
        connected=row.connected,
        status_delay_ms=row.status_delay_ms,
        latency_ms=row.latency_ms,
        fail_numbers=dict(row.fail_numbers),
        fail_rate=row.fail_rate,
        deliver_after_ms=row.deliver_after_ms,
    )


class SimulatorRepository:
    """All SQL of the simulator's own tables."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, session_id: str) -> SimulatorScenario | None:
        return await self.session.get(SimulatorScenario, session_id)

    async def begin_send(
        self, session_id: str, client_message_id: str, now: datetime
    ) -> tuple[SimulatorScenario, int, str | None] | None:
        """In one round trip: the scenario (locked, so a session's sends are logged one at
        a time), how many of its sends are in flight, and the provider id of an earlier
        send with this client message id."""
        sends = SimulatorSend.__table__.alias("x")
        in_flight = (
            select(func.count())
            .select_from(sends)
            .where(
                sends.c.session_id == session_id,
                sends.c.finished_at.is_(None),
                sends.c.started_at > now - IN_FLIGHT_WINDOW,
            )
            .scalar_subquery()
        )
        originals = SimulatorSend.__table__.alias("o")
        original = (
            select(originals.c.provider_message_id)
            .where(
                originals.c.session_id == session_id,
                originals.c.client_message_id == client_message_id,
                originals.c.repeat.is_(False),
            )
            .scalar_subquery()
        )
        result = await self.session.execute(
            select(SimulatorScenario, in_flight, original)
            .where(SimulatorScenario.session_id == session_id)
            .with_for_update(of=SimulatorScenario)
        )
        row = result.first()
        if row is None:
            return None
        return row[0], int(row[1]), row[2]

    async def add_send(self, record: SimulatorSend) -> SimulatorSend:
        self.session.add(record)
        await self.session.flush()
        return record

    async def finish_send(
        self,
        send_id: int,
        *,
        at: datetime,
        outcome: str,
        error_code: str | None,
        deliver_at: datetime | None,
    ) -> None:
        await self.session.execute(
            update(SimulatorSend)
            .where(SimulatorSend.id == send_id)
            .values(finished_at=at, outcome=outcome, error_code=error_code, deliver_at=deliver_at)
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


class SimulatorProvider:
    """The simulated gateway; reads its scenario from the database on every call."""

    kind = KIND
    supports_client_message_id = True

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

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
        """Log the send as it starts (committed on its own), wait the latency, log its end.

        A client message id seen before is a repeat: it gets the first send's
        provider message id back and is not delivered again.
        """
        del text  # the simulated WhatsApp does not read messages
        now = self._clock.now()
        async with self._database.transaction() as db:
            repo = SimulatorRepository(db)
            begun = await repo.begin_send(session.session_id, client_message_id, now)
            if begun is None:
                await repo.ensure(session.session_id, self._clock)
                begun = await repo.begin_send(session.session_id, client_message_id, now)
                assert begun is not None
            row, in_flight, original_id = begun
            scenario = scenario_from_row(row)
            if not scenario.connected:
                return SendResult(
                    SendOutcome.DISCONNECTED,
                    error_code="SESSION_DISCONNECTED",
                    error_message=classify("SESSION_DISCONNECTED")[1],
                )
            if in_flight + 1 > row.in_flight_high_water_mark:
                row.in_flight_high_water_mark = in_flight + 1
            repeat = original_id is not None
            record = await repo.add_send(
                SimulatorSend(
                    session_id=session.session_id,
                    phone=to,
                    client_message_id=client_message_id,
                    provider_message_id=original_id or f"sim-{uuid.uuid4().hex}",
                    repeat=repeat,
                    started_at=now,
                )
            )
        if scenario.latency_ms:
            await asyncio.sleep(scenario.latency_ms / 1000)
        if repeat:
            outcome, code = SendOutcome.SENT, None
        elif to in scenario.fail_numbers:
            code = scenario.fail_numbers[to]
            outcome = classify(code)[0]
        elif fails_by_rate(client_message_id, scenario.fail_rate):
            code = RANDOM_FAILURE_CODE
            outcome = classify(code)[0]
        else:
            outcome, code = SendOutcome.SENT, None
        finished = self._clock.now()
        deliver_at = None
        if outcome is SendOutcome.SENT and not repeat and scenario.deliver_after_ms is not None:
            deliver_at = finished + timedelta(milliseconds=scenario.deliver_after_ms)
        async with self._database.transaction() as db:
            await SimulatorRepository(db).finish_send(
                record.id,
                at=finished,
                outcome=outcome.value,
                error_code=code,
                deliver_at=deliver_at,
            )
        if outcome is SendOutcome.SENT:
            return SendResult(
                outcome,
                provider_message_id=record.provider_message_id,
                repeated=repeat,
            )
        assert code is not None
        return SendResult(outcome, error_code=code, error_message=classify(code)[1])

    def parse_webhook(self, secret: str, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        """Receipts posted for a simulator session, signed with its webhook secret."""
        from wabroadcast.receipts.simulator_webhook import parse_simulator_webhook

        return parse_simulator_webhook(secret, headers, body)
