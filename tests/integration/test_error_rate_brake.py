"""The error-rate brake on both databases: a burst of numbers that cannot receive WhatsApp
messages pauses the session's broadcasts; transient failures and a tolerable share do not."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from tests.integration.test_dashboard import sign_in, text_of
from tests.support.dispatch import (
    broadcast,
    counts_match_rows,
    create,
    dispatcher,
    paced,
    scenario,
    sends,
)
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppSession
from wabroadcast.dispatch.brake import ErrorRateBrake
from wabroadcast.domain.error_rate import over_limit, pause_reason, recipient_level
from wabroadcast.texts import Translator

BROADCASTS = "/api/whatsapp/broadcasts"


@pytest.fixture(autouse=True)
async def one_send_per_call(ctx: AppContext, tenant: TenantFixture) -> None:
    """Paced (fast) sends go one per provider call, so the brake looks after each send."""
    await paced(ctx, tenant.session_id, 60_000)


async def test_eleven_bad_numbers_in_fifty_sends_pause_the_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    numbers = il_numbers(60)
    # The 11th failure within the window is more than 20 % of 50.
    bad = numbers[::3][:11]
    await scenario(client, tenant, fail_numbers=dict.fromkeys(bad, "NOT_ON_WHATSAPP"))
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()

    b = await broadcast(client, tenant, broadcast_id)
    assert b["status"] == "paused"
    assert "11 of the last 50 sends" in str(b["status_reason"])
    assert Translator("en").pause_reason(b["status_reason"]).startswith("Too many")
    # Nothing after the send that tripped it: the 11th bad number is the 31st number.
    tried = [item["phone"] for item in (await sends(client, tenant))["items"]]
    assert tried == numbers[:31]
    assert (b["failed_count"], b["sent_count"], b["queued_count"]) == (11, 20, 29)
    await counts_match_rows(ctx, broadcast_id)

    # Paused stays paused: later passes send nothing.
    clock.advance(3600)
    await dispatcher(ctx).run_until_idle()
    assert len((await sends(client, tenant))["items"]) == 31

    # Resumed after the list was cleaned, it starts a new window and finishes.
    await scenario(client, tenant, fail_numbers={})
    resumed = await client.post(f"{BROADCASTS}/{broadcast_id}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    await dispatcher(ctx).run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("partial", 49, 11)


async def test_every_page_says_the_brake_paused_sending_not_whatsapp(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(20)
    await scenario(client, tenant, fail_numbers=dict.fromkeys(numbers[:11], "INVALID_NUMBER"))
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()
    assert (await broadcast(client, tenant, broadcast_id))["status"] == "paused"
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as browser:
        await sign_in(browser, tenant)
        page = text_of(await browser.get("/sessions"))
        assert "went to numbers that cannot receive WhatsApp messages: its broadcasts" in page
        assert "WhatsApp refused the account" not in page
        browser.cookies.set("wab_lang", "he")
        he = text_of(await browser.get(f"/broadcasts/{broadcast_id}"))
        assert "יותר מדי מההודעות האחרונות של המספר הזה נכשלו" in he


async def test_twenty_percent_is_tolerated_and_transient_failures_do_not_count(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    numbers = il_numbers(50)
    fail = dict.fromkeys(numbers[:10], "NOT_ON_WHATSAPP")
    # Server errors are retried and say nothing about the list.
    fail |= dict.fromkeys(numbers[10:30], "SERVER_ERROR")
    await scenario(client, tenant, fail_numbers=fail)
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert b["status"] != "paused"
    assert b["failed_count"] == 10


async def test_a_session_may_tolerate_more(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    async with ctx.database.transaction() as db:
        await db.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == tenant.session_id)
            .values(pause_error_rate=0.5)
        )
    numbers = il_numbers(40)
    await scenario(client, tenant, fail_numbers=dict.fromkeys(numbers[:20], "INVALID_NUMBER"))
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["failed_count"], b["sent_count"]) == ("partial", 20, 20)


def test_the_window_keeps_only_the_latest_sends() -> None:
    brake = ErrorRateBrake(0.2, window=50)
    assert brake.record("s", [True] * 10, None) is None
    # Forty good sends push nothing out yet; fifty more push every failure out.
    assert brake.record("s", [False] * 90, None) is None
    assert brake.record("s", [True] * 10, None) is None
    assert brake.record("s", [True], None) == 11
    # Tripping starts a new window.
    assert brake.record("s", [True] * 10, None) is None
    # However the sends are grouped: eleven failures within fifty trip it mid-call.
    assert brake.record("t", [True] * 11 + [False] * 80, None) == 11
    # Sessions do not share a window.
    assert brake.record("other", [True] * 10, None) is None


def test_the_rule() -> None:
    assert not over_limit(10, 0.2)
    assert over_limit(11, 0.2)
    assert recipient_level("NOT_ON_WHATSAPP")
    assert recipient_level("META_131026")
    assert not recipient_level("SERVER_ERROR")
    assert not recipient_level(None)
    assert pause_reason(11, 0.2) == (
        "Paused by the error-rate brake: 11 of the last 50 sends failed because the "
        "numbers cannot receive WhatsApp messages (more than 20%)."
    )
