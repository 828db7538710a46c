"""The one reply to a number that opts out by a stop word, on both databases: sent once,
through the session the stop word came through, never twice, never without a reply set."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, update

from tests.support.dispatch import dispatcher, sends, unpaced
from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import OptOut, Tenant
from wabroadcast.opt_outs.confirmations import send_due_replies
from wabroadcast.opt_outs.repository import OptOutRepository

INBOUND = "/api/whatsapp/simulator/inbound"
REPLY = "You will get no more messages from us. Write START to come back."


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def set_reply(ctx: AppContext, tenant: TenantFixture, text: str | None) -> None:
    async with ctx.database.transaction() as db:
        await db.execute(
            update(Tenant).where(Tenant.id == tenant.tenant_id).values(opt_out_reply=text)
        )


async def inbound(client: httpx.AsyncClient, tenant: TenantFixture, sender: str, text: str) -> None:
    response = await client.post(
        INBOUND, json={"from": sender, "text": text}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def replies(client: httpx.AsyncClient, tenant: TenantFixture) -> list[tuple[str, str]]:
    return [(item["phone"], item["text"]) for item in (await sends(client, tenant))["items"]]


async def reply_state(ctx: AppContext, phone: str) -> tuple[str | None, str | None]:
    async with ctx.database.transaction() as db:
        row = (
            await db.execute(
                select(OptOut.reply_status, OptOut.session_id).where(OptOut.phone == phone)
            )
        ).one()
    return row[0], row[1]


async def test_a_stop_word_gets_one_reply_through_its_session(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await set_reply(ctx, tenant, REPLY)
    await inbound(client, tenant, "+972502345671", "STOP")
    await inbound(client, tenant, "+972502345672", "הסר")
    assert await reply_state(ctx, "+972502345671") == ("due", tenant.session_id)
    await dispatcher(ctx).run_until_idle()
    assert sorted(await replies(client, tenant)) == [
        ("+972502345671", REPLY),
        ("+972502345672", REPLY),
    ]
    assert (await reply_state(ctx, "+972502345671"))[0] == "sent"

    # A second STOP adds nothing, so it is not answered again.
    clock.advance(3600)
    await inbound(client, tenant, "+972502345671", "stop")
    await dispatcher(ctx).run_until_idle()
    assert len(await replies(client, tenant)) == 2


async def test_no_reply_without_one_set_nor_for_numbers_opted_out_by_the_api(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await inbound(client, tenant, "+972502345671", "STOP")
    await set_reply(ctx, tenant, REPLY)
    added = await client.post(
        "/api/whatsapp/opt-outs", json={"phones": ["+972502345673"]}, headers=tenant.headers
    )
    assert added.status_code == 200, added.text
    await dispatcher(ctx).run_until_idle()
    assert await replies(client, tenant) == []
    assert await reply_state(ctx, "+972502345671") == (None, None)


async def test_a_reply_taken_by_a_worker_that_died_is_never_sent_again(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await set_reply(ctx, tenant, REPLY)
    await inbound(client, tenant, "+972502345671", "STOP")
    # A worker takes it (committed as sending) and dies before the provider call.
    async with ctx.database.transaction() as db:
        (taken,) = await OptOutRepository(db).take_due_replies(10)
    assert (taken.phone, taken.text) == ("+972502345671", REPLY)
    assert await send_due_replies(ctx) == 0
    await dispatcher(ctx).run_until_idle()
    assert await replies(client, tenant) == []
    assert (await reply_state(ctx, "+972502345671"))[0] == "sending"


async def test_a_reply_cleared_before_its_turn_is_not_sent(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await set_reply(ctx, tenant, REPLY)
    await inbound(client, tenant, "+972502345671", "STOP")
    await set_reply(ctx, tenant, None)
    assert await send_due_replies(ctx) == 1
    assert await replies(client, tenant) == []
    assert (await reply_state(ctx, "+972502345671"))[0] == "failed"
