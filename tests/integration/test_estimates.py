"""Estimates and waiting reasons as the API shows them, on both databases, time frozen:
behind another broadcast, waiting for the pace, paused, scheduled, not connected, over."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import event, update

from tests.support.dispatch import (
    URL,
    broadcast,
    create,
    drain,
    paced,
    scenario,
    unpaced,
)
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.client import follow, waiting_line
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppSession

GAP = timedelta(seconds=10)  # 6 a minute, no jitter
FIELDS = ("estimated_finish_at", "waiting_reason", "waiting_for_broadcast_id")


def utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def shown(b: dict[str, Any]) -> tuple[datetime | None, str | None, int | None]:
    return utc(b["estimated_finish_at"]), b["waiting_reason"], b["waiting_for_broadcast_id"]


async def listed(client: httpx.AsyncClient, tenant: TenantFixture) -> dict[int, dict[str, Any]]:
    page = (await client.get(URL, params={"limit": 50}, headers=tenant.headers)).json()
    return {b["broadcast_id"]: b for b in page["items"]}


async def next_send_at(ctx: AppContext, session_id: str, at: datetime) -> None:
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppSession).where(WhatsAppSession.id == session_id).values(next_send_at=at)
        )


async def test_a_broadcast_behind_another_names_it_and_adds_its_recipients(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await paced(ctx, tenant.session_id, 6)
    first = await create(client, tenant, il_numbers(3), "first")
    second = await create(client, tenant, il_numbers(2, start=10), "second")
    now = clock.now()
    assert shown(await broadcast(client, tenant, first)) == (now + 3 * GAP, None, None)
    assert shown(await broadcast(client, tenant, second)) == (
        now + (3 + 2) * GAP,
        "behind_broadcast",
        first,
    )
    # The list shows the same, for every broadcast of the page.
    page = await listed(client, tenant)
    assert shown(page[first]) == (now + 3 * GAP, None, None)
    assert shown(page[second]) == (now + 5 * GAP, "behind_broadcast", first)

    # The session's next turn is a minute away: the first waits for the pace, and both
    # estimates move by that minute.
    await next_send_at(ctx, tenant.session_id, now + timedelta(minutes=1))
    turn = now + timedelta(minutes=1)
    assert shown(await broadcast(client, tenant, first)) == (turn + 3 * GAP, "pace", None)
    assert shown(await broadcast(client, tenant, second)) == (
        turn + 5 * GAP,
        "behind_broadcast",
        first,
    )

    # Once the first is cancelled, the second is alone on its session.
    cancelled = await client.post(f"{URL}/{first}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200
    clock.advance(120)
    later = clock.now()
    assert shown(await broadcast(client, tenant, first)) == (None, None, None)
    assert shown(await broadcast(client, tenant, second)) == (later + 2 * GAP, None, None)


async def test_a_paused_broadcast_says_so_and_is_not_ahead_of_others(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await paced(ctx, tenant.session_id, 6)
    first = await create(client, tenant, il_numbers(4), "first")
    second = await create(client, tenant, il_numbers(2, start=10), "second")
    response = await client.post(f"{URL}/{first}/pause", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert shown(await broadcast(client, tenant, first)) == (None, "paused", None)
    assert shown(await broadcast(client, tenant, second)) == (clock.now() + 2 * GAP, None, None)


async def test_a_scheduled_broadcast_finishes_after_its_send_at(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await paced(ctx, tenant.session_id, 6)
    send_at = clock.now() + timedelta(hours=1)

    async def schedule(numbers: list[str]) -> int:
        response = await client.post(
            URL,
            json={"message": "later", "recipients": numbers, "send_at": send_at.isoformat()},
            headers=tenant.headers,
        )
        assert response.status_code == 202, response.text
        broadcast_id: int = response.json()["broadcast_id"]
        return broadcast_id

    alone = await schedule(il_numbers(5))
    assert shown(await broadcast(client, tenant, alone)) == (send_at + 5 * GAP, "scheduled", None)
    # Created after it, sending now: at send_at the scheduled one is older and goes first.
    await create(client, tenant, il_numbers(400, start=100), "long")
    assert shown(await broadcast(client, tenant, alone)) == (send_at + 5 * GAP, "scheduled", None)
    # Scheduled after the long one (400 sends, 4000 s): it starts when that one is done.
    behind = await schedule(il_numbers(5, start=600))
    assert shown(await broadcast(client, tenant, behind)) == (
        clock.now() + (400 + 5) * GAP,
        "scheduled",
        None,
    )


async def test_a_disconnected_session_is_not_connected_without_an_estimate(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await paced(ctx, tenant.session_id, 6)
    first = await create(client, tenant, il_numbers(3), "first")
    second = await create(client, tenant, il_numbers(2, start=10), "second")
    await scenario(client, tenant, connected=False)
    for broadcast_id in (first, second):
        assert shown(await broadcast(client, tenant, broadcast_id)) == (
            None,
            "not_connected",
            None,
        )
    assert {shown(b) for b in (await listed(client, tenant)).values()} == {
        (None, "not_connected", None)
    }
    await scenario(client, tenant, connected=True)
    assert shown(await broadcast(client, tenant, second)) == (
        clock.now() + 5 * GAP,
        "behind_broadcast",
        first,
    )


async def test_a_finished_broadcast_reports_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    done = await create(client, tenant, il_numbers(3))
    await drain(ctx, clock)
    b = await broadcast(client, tenant, done)
    assert b["status"] == "completed"
    assert {field: b[field] for field in FIELDS} == dict.fromkeys(FIELDS)
    assert {field: (await listed(client, tenant))[done][field] for field in FIELDS} == (
        dict.fromkeys(FIELDS)
    )


async def test_send_wait_prints_what_the_broadcast_waits_for(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    """``send --wait`` follows with ``client.follow``: it prints the waiting line once,
    above the progress bar, until the broadcast stops (here: paused by hand)."""
    await paced(ctx, tenant.session_id, 6)
    first = await create(client, tenant, il_numbers(3), "first")
    second = await create(client, tenant, il_numbers(2, start=10), "second")
    expected = waiting_line(await broadcast(client, tenant, second))
    assert expected is not None
    assert expected.startswith(f"waiting: behind broadcast {first} · estimated finish ")
    out = io.StringIO()
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=tenant.headers
    ) as http:
        following = asyncio.create_task(follow(http, Console(file=out, width=200), second, 0.01))
        for _ in range(500):
            if expected in out.getvalue():
                break
            await asyncio.sleep(0.01)
        paused = await client.post(f"{URL}/{second}/pause", headers=tenant.headers)
        assert paused.status_code == 200, paused.text
        final = await following
    assert final["status"] == "paused"
    assert out.getvalue().count(expected) == 1


async def test_a_page_costs_the_same_statements_however_many_broadcasts_it_shows(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await paced(ctx, tenant.session_id, 6)
    for n in range(2):
        await create(client, tenant, il_numbers(2, start=10 * n), f"b{n}")
    few = await statements_of_a_page(client, tenant, ctx)
    for n in range(2, 8):
        await create(client, tenant, il_numbers(2, start=10 * n), f"b{n}")
    many = await statements_of_a_page(client, tenant, ctx)
    assert len(many) == len(few), many
    page = await listed(client, tenant)
    assert [page[b]["waiting_for_broadcast_id"] for b in sorted(page)] == [None] + [min(page)] * 7


async def statements_of_a_page(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> list[str]:
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    engine = ctx.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        response = await client.get(URL, params={"limit": 50}, headers=tenant.headers)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert response.status_code == 200
    return sent
