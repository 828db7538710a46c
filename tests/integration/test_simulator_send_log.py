"""The simulator's send log under calls of many messages and concurrent callers.

What the dispatcher's guarantees rest on: every send that reached the simulated
WhatsApp is in the log before its caller goes on, a repeated client message id
is never delivered twice, a call stops at an account-level error, and the
in-flight high-water mark counts concurrent callers, not messages.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from tests.support.dispatch import scenario, sends
from tests.support.providers import simulator_of
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.providers.base import OutgoingMessage, SendOutcome, SessionRef
from wabroadcast.providers.simulator.models import SimulatorSend
from wabroadcast.providers.simulator.repository.send_log import ANSWER_GRACE


def _ref(tenant: TenantFixture) -> SessionRef:
    return SessionRef(tenant.session_id, tenant.tenant_id, "simulator", {})


def _messages(numbers: list[str], prefix: str = "m") -> list[OutgoingMessage]:
    return [OutgoingMessage(n, "hi", f"{prefix}-{i}") for i, n in enumerate(numbers)]


async def _rows(ctx: AppContext) -> list[SimulatorSend]:
    async with ctx.database.transaction() as db:
        return list((await db.execute(select(SimulatorSend).order_by(SimulatorSend.id))).scalars())


async def test_a_call_logs_every_message_as_started_and_finished(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(5)
    results = await simulator_of(ctx).send_many(_ref(tenant), _messages(numbers))
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 5
    rows = await _rows(ctx)
    assert [r.phone for r in rows] == numbers
    assert all(r.finished_at == r.started_at and r.outcome == "sent" for r in rows)
    assert [r.provider_message_id for r in rows] == [r.provider_message_id for r in results]
    assert len({r.provider_message_id for r in rows}) == 5
    # One caller sent them one after another: never more than one in flight.
    assert (await sends(client, tenant))["hwm"] == 1


async def test_a_call_stops_after_an_account_level_error(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(6)
    await scenario(client, tenant, fail_numbers={numbers[2]: "SPAM_FLAGGED"})
    results = await simulator_of(ctx).send_many(_ref(tenant), _messages(numbers))
    assert [r.outcome for r in results] == [
        SendOutcome.SENT,
        SendOutcome.SENT,
        SendOutcome.ACCOUNT_BLOCKED,
    ]
    assert results[2].error_code == "SPAM_FLAGGED"
    assert [r.phone for r in await _rows(ctx)] == numbers[:3]


async def test_a_disconnected_session_logs_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await scenario(client, tenant, connected=False)
    results = await simulator_of(ctx).send_many(_ref(tenant), _messages(il_numbers(3)))
    assert [r.outcome for r in results] == [SendOutcome.DISCONNECTED]
    assert await _rows(ctx) == []


async def test_repeated_ids_get_the_first_provider_id_and_no_second_delivery(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(3)
    first = await simulator_of(ctx).send_many(_ref(tenant), _messages(numbers))
    # A retried call (same ids) plus the same id twice within one call.
    again = await simulator_of(ctx).send_many(
        _ref(tenant), [*_messages(numbers), _messages(numbers)[0]]
    )
    assert [r.provider_message_id for r in again] == [
        *(r.provider_message_id for r in first),
        first[0].provider_message_id,
    ]
    assert [r.repeated for r in again] == [True] * 4
    rows = await _rows(ctx)
    assert [r.repeat for r in rows] == [False] * 3 + [True] * 4
    # Only first sends get a "delivered" receipt.
    assert [r.deliver_at is not None for r in rows] == [True] * 3 + [False] * 4


@pytest.mark.parametrize("callers", [1, 3])
async def test_the_high_water_mark_counts_concurrent_callers(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, callers: int
) -> None:
    numbers = il_numbers(4 * callers)
    ref = _ref(tenant)
    await asyncio.gather(
        *(
            simulator_of(ctx).send_many(ref, _messages(numbers[4 * n : 4 * n + 4], prefix=f"c{n}"))
            for n in range(callers)
        )
    )
    log = await sends(client, tenant)
    assert len(log["items"]) == 4 * callers
    assert log["hwm"] == callers


async def test_a_slow_send_is_logged_before_it_ends_and_counts_as_in_flight(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """Like a worker killed mid-send: the start is in the log, the end never comes."""
    numbers = il_numbers(2)
    await scenario(client, tenant, latency_ms=600_000)
    ref = _ref(tenant)
    slow = asyncio.create_task(
        simulator_of(ctx).send(ref, OutgoingMessage(numbers[0], "hi", "slow-1")), name="slow send"
    )
    for _ in range(500):
        if await _rows(ctx):
            break
        await asyncio.sleep(0.01)
    (started,) = await _rows(ctx)
    assert (started.client_message_id, started.finished_at) == ("slow-1", None)
    second = asyncio.create_task(
        simulator_of(ctx).send(ref, OutgoingMessage(numbers[1], "hi", "slow-2"))
    )
    for _ in range(500):
        if len(await _rows(ctx)) == 2:
            break
        await asyncio.sleep(0.01)
    assert (await sends(client, tenant))["hwm"] == 2
    for task in (slow, second):
        task.cancel()
    await asyncio.gather(slow, second, return_exceptions=True)
    assert [r.finished_at for r in await _rows(ctx)] == [None, None]


async def test_a_send_whose_caller_died_stops_counting_as_in_flight_once_answered(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    """A worker killed mid-send never logs the send's end, but WhatsApp answers it all
    the same: once its latency and ANSWER_GRACE are over, the next send of the session
    (its slot's next holder, say) is alone in flight; before that, it is the second."""
    numbers = il_numbers(4)
    ref = _ref(tenant)

    async def send_and_die(number: str, client_message_id: str) -> None:
        await scenario(client, tenant, latency_ms=600_000)
        caller = asyncio.create_task(
            simulator_of(ctx).send(ref, OutgoingMessage(number, "hi", client_message_id))
        )
        for _ in range(500):
            if any(r.client_message_id == client_message_id for r in await _rows(ctx)):
                break
            await asyncio.sleep(0.01)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        await scenario(client, tenant, latency_ms=0)

    await send_and_die(numbers[0], "dead-1")
    clock.advance(600 + ANSWER_GRACE.total_seconds() + 0.001)
    await simulator_of(ctx).send(ref, OutgoingMessage(numbers[1], "hi", "next-1"))
    assert (await sends(client, tenant))["hwm"] == 1

    await send_and_die(numbers[2], "dead-2")
    clock.advance(599)
    await simulator_of(ctx).send(ref, OutgoingMessage(numbers[3], "hi", "next-2"))
    assert (await sends(client, tenant))["hwm"] == 2
    assert [(r.client_message_id, r.finished_at is None) for r in await _rows(ctx)] == [
        ("dead-1", True),
        ("next-1", False),
        ("dead-2", True),
        ("next-2", False),
    ]


async def test_a_refused_send_is_no_original_so_its_id_is_delivered_next_time(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """WhatsApp refused the first send (nothing delivered): the next send with its id is a
    first send, delivered with a provider id of its own; a send after that one repeats it."""
    (number,) = il_numbers(1)
    ref = _ref(tenant)
    await scenario(client, tenant, fail_numbers={number: "SPAM_FLAGGED"})
    refused = await simulator_of(ctx).send(ref, OutgoingMessage(number, "hi", "held-1"))
    assert refused.outcome is SendOutcome.ACCOUNT_BLOCKED
    await scenario(client, tenant, fail_numbers={})
    delivered = await simulator_of(ctx).send(ref, OutgoingMessage(number, "hi", "held-1"))
    repeated = await simulator_of(ctx).send(ref, OutgoingMessage(number, "hi", "held-1"))
    assert (delivered.outcome, delivered.repeated) == (SendOutcome.SENT, False)
    assert (repeated.outcome, repeated.repeated) == (SendOutcome.SENT, True)
    assert repeated.provider_message_id == delivered.provider_message_id
    rows = await _rows(ctx)
    assert [(r.repeat, r.outcome, r.deliver_at is not None) for r in rows] == [
        (False, "account_blocked", False),
        (False, "sent", True),
        (True, "sent", False),
    ]
    assert rows[1].provider_message_id != rows[0].provider_message_id


async def test_a_message_id_is_a_repeat_only_within_its_own_session(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    numbers = il_numbers(2)
    first = await simulator_of(ctx).send_many(_ref(tenant), _messages(numbers))
    # Both sessions send in one flush, with the same client message ids.
    mine, theirs = await asyncio.gather(
        simulator_of(ctx).send_many(_ref(tenant), _messages(numbers)),
        simulator_of(ctx).send_many(_ref(other), _messages(numbers)),
    )
    assert [r.repeated for r in mine] == [True, True]
    assert [r.provider_message_id for r in mine] == [r.provider_message_id for r in first]
    assert [r.repeated for r in theirs] == [False, False]
    assert not {r.provider_message_id for r in theirs} & {r.provider_message_id for r in first}


async def test_a_slow_call_reports_each_result_once_its_end_is_logged(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """``on_result`` hears of each send while the call goes on, in order, once the send's
    end is in the log (committed with the next start); the last one comes with the answer."""
    numbers = il_numbers(4)
    await scenario(client, tenant, latency_ms=20)
    heard: list[tuple[int, str | None]] = []
    results = await simulator_of(ctx).send_many(
        _ref(tenant),
        _messages(numbers),
        lambda position, result: heard.append((position, result.provider_message_id)),
    )
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 4
    assert heard == [(n, results[n].provider_message_id) for n in range(3)]
    rows = await _rows(ctx)
    assert all(r.finished_at is not None and r.outcome == "sent" for r in rows)


async def test_a_changed_scenario_holds_from_the_next_send_on(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """The send log keeps scenarios it has read while their rows are unchanged; a change
    made meanwhile (here after the high-water mark itself was raised) is read again."""
    numbers = il_numbers(3)
    ref = _ref(tenant)
    (first,) = await simulator_of(ctx).send_many(ref, _messages(numbers[:1], "a"))
    await scenario(client, tenant, fail_numbers={numbers[1]: "NOT_ON_WHATSAPP"})
    second, third = await simulator_of(ctx).send_many(ref, _messages(numbers[1:], "b"))
    assert (first.outcome, second.outcome, third.outcome) == (
        SendOutcome.SENT,
        SendOutcome.FAILED,
        SendOutcome.SENT,
    )
    assert second.error_code == "NOT_ON_WHATSAPP"
    await scenario(client, tenant, connected=False)
    (held,) = await simulator_of(ctx).send_many(ref, _messages(numbers[2:], "c"))
    assert held.outcome is SendOutcome.DISCONNECTED
    assert len(await _rows(ctx)) == 3


async def test_messages_given_by_more_go_out_in_the_same_call_one_after_another(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    """``more`` is asked once the call's own messages are sent; what it gives takes the
    next positions, goes out with the same latency after the last, and is logged
    like the rest (one in flight at a time); asked again, it ends the call."""
    await scenario(client, tenant, latency_ms=20, deliver_after_ms=None)
    numbers = il_numbers(5)
    extra = [_messages(numbers[2:4], "b"), _messages(numbers[4:], "c"), []]
    asked: list[int] = []
    reported: list[int] = []

    def more() -> list[OutgoingMessage]:
        asked.append(len(reported))
        return extra.pop(0)

    results = await simulator_of(ctx).send_many(
        _ref(tenant),
        _messages(numbers[:2], "a"),
        lambda position, _result: reported.append(position),
        more,
    )
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 5
    # Asked only when all it had was sent; each result is reported once its end is
    # logged, with the next start (the last one's comes with the answer).
    assert asked == [1, 3, 4]
    assert reported == [0, 1, 2, 3]
    rows = await _rows(ctx)
    assert [(r.phone, r.client_message_id) for r in rows] == [
        (numbers[0], "a-0"),
        (numbers[1], "a-1"),
        (numbers[2], "b-0"),
        (numbers[3], "b-1"),
        (numbers[4], "c-0"),
    ]
    assert [r.provider_message_id for r in rows] == [r.provider_message_id for r in results]
    assert all(r.finished_at is not None for r in rows)
    assert (await sends(client, tenant))["hwm"] == 1


async def test_a_call_stopped_by_a_disconnect_does_not_ask_for_more(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(3)
    await scenario(client, tenant, fail_numbers={numbers[1]: "SESSION_DISCONNECTED"})
    asked: list[bool] = []

    def more() -> list[OutgoingMessage]:
        asked.append(True)
        return _messages(numbers[2:], "more")

    results = await simulator_of(ctx).send_many(_ref(tenant), _messages(numbers[:2]), None, more)
    assert [r.outcome for r in results] == [SendOutcome.SENT, SendOutcome.DISCONNECTED]
    assert asked == []
    assert [r.phone for r in await _rows(ctx)] == numbers[:2]
