"""Helpers for tests that run the dispatcher in-process with a frozen clock."""

from __future__ import annotations

import random
from typing import Any

import httpx
from sqlalchemy import func, select, update

from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient, WhatsAppSession
from wabroadcast.dispatch.dispatcher import Dispatcher
from wabroadcast.dispatch.tuning import Tuning

URL = "/api/whatsapp/broadcasts"
FINAL = {"completed", "partial", "failed", "cancelled"}


async def unpaced(ctx: AppContext, session_id: str, max_concurrency: int = 1) -> None:
    await paced(ctx, session_id, 0, max_concurrency)


async def paced(
    ctx: AppContext, session_id: str, rate_per_minute: float, max_concurrency: int = 1
) -> None:
    """The session sends ``rate_per_minute`` messages a minute (0: unpaced), no jitter."""
    async with ctx.database.transaction() as session:
        await session.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == session_id)
            .values(rate_per_minute=rate_per_minute, jitter_ms=0, max_concurrency=max_concurrency)
        )


async def scenario(client: httpx.AsyncClient, tenant: TenantFixture, **fields: object) -> None:
    response = await client.put("/api/whatsapp/simulator", json=fields, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def create(
    client: httpx.AsyncClient, tenant: TenantFixture, recipients: list[str], message: str = "hi"
) -> int:
    response = await client.post(
        URL, json={"message": message, "recipients": recipients}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    broadcast_id: int = response.json()["broadcast_id"]
    return broadcast_id


async def broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int
) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get(f"{URL}/{broadcast_id}", headers=tenant.headers)
    ).json()
    return body


async def recipients(
    client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int, status: str | None = None
) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"limit": 500}
    if status:
        params["status"] = status
    items: list[dict[str, Any]] = (
        await client.get(f"{URL}/{broadcast_id}/recipients", params=params, headers=tenant.headers)
    ).json()["items"]
    return items


async def every_page(
    client: httpx.AsyncClient, tenant: TenantFixture, path: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every item of a cursor-paged list, and the last page (for its other fields)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page: dict[str, Any] = (
            await client.get(path, params=params, headers=tenant.headers)
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items, page


async def sends(client: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, Any]:
    """Every simulated send (all pages) and the in-flight high-water mark."""
    items, last = await every_page(client, tenant, "/api/whatsapp/simulator/sends")
    return {"items": items, "hwm": last["in_flight_high_water_mark"]}


async def all_recipients(
    client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int
) -> list[dict[str, Any]]:
    items, _ = await every_page(client, tenant, f"{URL}/{broadcast_id}/recipients")
    return items


def dispatcher(ctx: AppContext, name: str = "w1", *, tuning: Tuning | None = None) -> Dispatcher:
    return Dispatcher(ctx, worker_id=name, rng=random.Random(7), tuning=tuning)


async def drain(
    ctx: AppContext, clock: FrozenClock, workers: list[Dispatcher] | None = None, rounds: int = 50
) -> None:
    """Run the dispatcher(s) until nothing is left, moving time past backoffs as needed."""
    workers = workers or [dispatcher(ctx)]
    for _ in range(rounds):
        for worker in workers:
            await worker.run_until_idle()
        if not await pending(ctx):
            return
        clock.advance(600)
    raise AssertionError("recipients still pending after draining")


async def pending(ctx: AppContext) -> int:
    async with ctx.database.transaction() as session:
        count = (
            await session.execute(
                select(func.count())
                .select_from(WhatsAppBroadcastRecipient)
                .where(WhatsAppBroadcastRecipient.status.in_(("queued", "sending")))
                .where(
                    WhatsAppBroadcastRecipient.broadcast_id.in_(
                        select(WhatsAppBroadcast.id).where(
                            WhatsAppBroadcast.status.in_(("queued", "running"))
                        )
                    )
                )
            )
        ).scalar_one()
    return int(count)


async def counts_match_rows(ctx: AppContext, broadcast_id: int) -> None:
    """The broadcast's counters equal a fresh count of its recipients' statuses."""
    async with ctx.database.transaction() as session:
        rows = dict(
            (
                await session.execute(
                    select(WhatsAppBroadcastRecipient.status, func.count())
                    .where(WhatsAppBroadcastRecipient.broadcast_id == broadcast_id)
                    .group_by(WhatsAppBroadcastRecipient.status)
                )
            ).all()
        )
        b = await session.get(WhatsAppBroadcast, broadcast_id)
    assert b is not None
    stored = {
        "queued": b.queued_count,
        "sending": b.sending_count,
        "sent": b.sent_count,
        "delivered": b.delivered_count,
        "read": b.read_count,
        "failed": b.failed_count,
        "cancelled": b.cancelled_count,
        "skipped": b.skipped_count,
    }
    assert stored == {status: int(rows.get(status, 0)) for status in stored}
