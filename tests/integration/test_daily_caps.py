"""Daily caps and warm-up on both databases, with a frozen clock: a capped session sends
its day's cap and the rest wait (``daily_cap``) for the next day in the tenant's zone;
the warm-up ramps day by day; unsent claims give their sends back; the settings are
validated; and a cap holds across two worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.integration.test_dashboard import sign_in, text_of
from tests.support.dispatch import (
    broadcast,
    counts_match_rows,
    create,
    dispatcher,
    recipients,
    sends,
    unpaced,
)
from tests.support.rows import il_numbers
from tests.support.tenants import START, TEST_SECRET_KEY, TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import (
    SessionDailySends,
    Tenant,
    WhatsAppBroadcastRecipient,
    WhatsAppSession,
)
from wabroadcast.dispatch.repository.claims import ClaimRepository
from wabroadcast.providers.simulator.models import SimulatorSend

SESSIONS = "/api/whatsapp/sessions"
# START is 14:00 in Jerusalem (UTC+2 in November); its next day begins at 22:00 UTC.
JERUSALEM_MIDNIGHT = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def jerusalem_tenant(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)
    async with ctx.database.transaction() as db:
        await db.execute(
            update(Tenant).where(Tenant.id == tenant.tenant_id).values(time_zone="Asia/Jerusalem")
        )


async def patch(
    client: httpx.AsyncClient, tenant: TenantFixture, **fields: object
) -> httpx.Response:
    return await client.patch(
        f"{SESSIONS}/{tenant.session_id}", json=fields, headers=tenant.headers
    )


async def session_shown(client: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, Any]:
    response = await client.get(f"{SESSIONS}/{tenant.session_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def counter(ctx: AppContext, session_id: str) -> dict[date, int]:
    async with ctx.database.transaction() as db:
        rows = await db.execute(
            select(SessionDailySends.day, SessionDailySends.sends).where(
                SessionDailySends.session_id == session_id
            )
        )
        return {day: int(sends) for day, sends in rows.all()}


async def test_cap_reached_the_rest_wait_for_the_next_day_in_the_tenant_zone(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    response = await patch(client, tenant, daily_cap=2)
    assert response.status_code == 200, response.text
    assert (response.json()["daily_cap"], response.json()["cap_today"]) == (2, 2)
    numbers = il_numbers(5)
    broadcast_id = await create(client, tenant, numbers)
    await dispatcher(ctx).run_until_idle()

    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["queued_count"]) == ("running", 2, 3)
    assert b["waiting_reason"] == "daily_cap"
    # 3 left at 2 a day: the last goes at the start of the day after tomorrow (Jerusalem).
    assert b["estimated_finish_at"] == "2026-11-29T22:00:00Z"
    assert [s["phone"] for s in (await sends(client, tenant))["items"]] == numbers[:2]
    shown = await session_shown(client, tenant)
    assert (shown["cap_today"], shown["sent_today"]) == (2, 2)
    assert await counter(ctx, tenant.session_id) == {date(2026, 11, 28): 2}

    # Later the same day (23:59 in Jerusalem) nothing more goes, however often it looks.
    clock.set(JERUSALEM_MIDNIGHT.replace(hour=21, minute=59))
    worker = dispatcher(ctx)
    for _ in range(3):
        await worker.run_until_idle()
    assert (await broadcast(client, tenant, broadcast_id))["sent_count"] == 2

    # Just after midnight in Jerusalem (still the 28th in UTC): the next two.
    clock.set(JERUSALEM_MIDNIGHT)
    await worker.run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["sent_count"], b["queued_count"], b["waiting_reason"]) == (4, 1, "daily_cap")
    assert await counter(ctx, tenant.session_id) == {date(2026, 11, 28): 2, date(2026, 11, 29): 2}
    shown = await session_shown(client, tenant)
    assert (shown["cap_today"], shown["sent_today"]) == (2, 2)

    clock.set(datetime(2026, 11, 29, 22, 0, 1, tzinfo=UTC))
    await worker.run_until_idle()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["status"], b["sent_count"], b["waiting_reason"]) == ("completed", 5, None)
    assert sorted(s["phone"] for s in (await sends(client, tenant))["items"]) == numbers
    await counts_match_rows(ctx, broadcast_id)


async def test_warm_up_ramps_day_by_day(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    response = await patch(
        client, tenant, daily_cap=5, warmup_days=3, warmup_start_cap=1, warmup_growth=2.0
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["warmup_started_at"] == "2026-11-28T12:00:00Z"
    assert (body["warmup_days"], body["warmup_start_cap"], body["warmup_growth"]) == (3, 1, 2.0)
    assert body["cap_today"] == 1
    broadcast_id = await create(client, tenant, il_numbers(20))
    worker = dispatcher(ctx)
    sent_by_day = []
    for day in range(5):
        clock.set(JERUSALEM_MIDNIGHT + timedelta(days=day - 1, seconds=1) if day else START)
        before = (await broadcast(client, tenant, broadcast_id))["sent_count"]
        await worker.run_until_idle()
        sent_by_day.append((await broadcast(client, tenant, broadcast_id))["sent_count"] - before)
    # 1, 2, 4 on the warm-up's days, then the daily cap of 5.
    assert sent_by_day == [1, 2, 4, 5, 5]
    assert (await session_shown(client, tenant))["sent_today"] == 5


async def test_unclaimed_recipients_give_their_sends_back(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    assert (await patch(client, tenant, daily_cap=3)).status_code == 200
    broadcast_id = await create(client, tenant, il_numbers(5))
    now = ctx.clock.now()
    async with ctx.database.transaction() as db:
        claimed = await ClaimRepository(db).claim(
            tenant.session_id, holder="w1", epoch=1, now=now, limit=10
        )
    assert len(claimed) == 3  # clamped to the cap
    assert await counter(ctx, tenant.session_id) == {date(2026, 11, 28): 3}
    async with ctx.database.transaction() as db:
        again = await ClaimRepository(db).claim(
            tenant.session_id, holder="w1", epoch=1, now=now, limit=10
        )
        assert again == []
        await ClaimRepository(db).unclaim(claimed[1:], 1, now)
    assert await counter(ctx, tenant.session_id) == {date(2026, 11, 28): 1}
    assert (await session_shown(client, tenant))["sent_today"] == 1
    async with ctx.database.transaction() as db:
        statuses = (
            await db.execute(
                select(WhatsAppBroadcastRecipient.status, func.count())
                .where(WhatsAppBroadcastRecipient.broadcast_id == broadcast_id)
                .group_by(WhatsAppBroadcastRecipient.status)
            )
        ).all()
    assert dict(statuses) == {"sending": 1, "queued": 4}
    await counts_match_rows(ctx, broadcast_id)


async def test_an_uncapped_session_keeps_no_counter(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    broadcast_id = await create(client, tenant, il_numbers(4))
    await dispatcher(ctx).run_until_idle()
    assert (await broadcast(client, tenant, broadcast_id))["sent_count"] == 4
    assert await counter(ctx, tenant.session_id) == {}
    shown = await session_shown(client, tenant)
    assert (shown["daily_cap"], shown["cap_today"], shown["sent_today"]) == (None, None, None)


async def test_whatsapp_web_sessions_start_at_their_preset(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    async with ctx.database.transaction() as db:
        await db.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == tenant.session_id)
            .values(provider="waha")
        )
    shown = await session_shown(client, tenant)
    assert (shown["daily_cap"], shown["cap_today"], shown["sent_today"]) == (None, 20, 0)


async def test_a_cloud_api_session_is_capped_by_its_messaging_tier(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    config = {
        "phone_number_id": "100000000000031",
        "access_token": "EAAG-access-token-for-tiers-0001",
        "app_secret": "app-secret-for-tiers-0001",
        "verify_token": "verify-token-for-tiers-0001",
        "graph_base_url": "http://127.0.0.1:9",
    }
    added = await client.post(
        SESSIONS,
        json={"provider": "cloud_api", "config": {**config, "messaging_tier": "1K"}},
        headers=tenant.headers,
    )
    assert added.status_code == 201, added.text
    assert (added.json()["cap_today"], added.json()["sent_today"]) == (1_000, 0)
    session_id = added.json()["session_id"]
    changed = await client.patch(
        f"{SESSIONS}/{session_id}",
        json={"config": {"messaging_tier": "unlimited"}},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["cap_today"] is None
    wrong = await client.patch(
        f"{SESSIONS}/{session_id}",
        json={"config": {"messaging_tier": "5K"}},
        headers=tenant.headers,
    )
    assert wrong.status_code == 422


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"daily_cap": -1}, "daily_cap"),
        ({"daily_cap": "ten"}, "daily_cap"),
        ({"warmup_days": 400}, "warmup_days"),
        ({"warmup_start_cap": 0}, "warmup_start_cap"),
        ({"warmup_growth": 0.5}, "warmup_growth"),
        ({"pause_error_rate": 0}, "pause_error_rate"),
        ({"pause_error_rate": 1.5}, "pause_error_rate"),
        ({"check_numbers": "yes"}, "check_numbers"),
        # A warm-up on the simulator (no preset) needs its first day's cap.
        ({"warmup_days": 3}, "warmup_start_cap"),
    ],
)
async def test_bad_settings_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: TenantFixture, fields: dict[str, object], field: str
) -> None:
    response = await patch(client, tenant, **fields)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["message"].startswith(field)
    assert [error["field"] for error in body["details"]["errors"]] == [field]
    shown = await session_shown(client, tenant)
    assert (shown["daily_cap"], shown["warmup_days"]) == (None, None)


async def test_settings_are_stored_and_shown(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await patch(client, tenant, pause_error_rate=0.3, check_numbers=False, daily_cap=0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["pause_error_rate"], body["check_numbers"], body["daily_cap"]) == (0.3, False, 0)
    assert body["cap_today"] is None
    listed = (await client.get(SESSIONS, headers=tenant.headers)).json()["items"]
    assert (listed[0]["pause_error_rate"], listed[0]["check_numbers"]) == (0.3, False)

    # Left out, a setting keeps its value; given as null, it goes back to the preset.
    kept = (await patch(client, tenant, jitter_ms=0)).json()
    assert (kept["pause_error_rate"], kept["daily_cap"]) == (0.3, 0)
    reset = await patch(client, tenant, daily_cap=None, pause_error_rate=None, jitter_ms=None)
    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert (body["daily_cap"], body["pause_error_rate"], body["check_numbers"]) == (
        None,
        None,
        False,
    )
    assert body["jitter_ms"] == 0


# --- the dashboard --------------------------------------------------------------------


@pytest.fixture
async def browser(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like a browser of its own."""
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_the_sessions_page_shows_caps_and_sets_them(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    csrf = await sign_in(browser, tenant)
    listed = await browser.get("/sessions")
    assert "No daily cap" in text_of(listed)
    assert f'href="/sessions/{tenant.session_id}/limits"' in listed.text
    limits = f"/sessions/{tenant.session_id}/limits"

    saved = await browser.post(
        limits,
        data={
            "csrf_token": csrf,
            "daily_cap": "2",
            "warmup_days": "",
            "pause_error_rate": "0.3",
            "check_numbers": "off",
        },
    )
    assert (saved.status_code, saved.headers["location"]) == (303, "/sessions?notice=limits_saved")
    shown = await session_shown(client, tenant)
    assert (shown["daily_cap"], shown["warmup_days"]) == (2, None)
    assert (shown["pause_error_rate"], shown["check_numbers"]) == (0.3, False)
    await create(client, tenant, il_numbers(3))
    await dispatcher(ctx).run_until_idle()
    page = text_of(await browser.get("/sessions?notice=limits_saved"))
    assert "The sending limits were saved." in page
    assert "2 of 2 sent" in page
    form = await browser.get(limits)
    assert 'name="daily_cap" value="2"' in form.text
    assert '<option value="off" selected>' in form.text

    refused = await browser.post(
        limits,
        data={"csrf_token": csrf, "daily_cap": "many", "warmup_growth": "0.5"},
    )
    assert refused.status_code == 422
    problems = text_of(refused)
    assert "Daily cap" in problems
    assert "Growth per day" in problems
    assert 'value="many"' in refused.text
    assert (await session_shown(client, tenant))["daily_cap"] == 2


# --- the CLI and two worker processes ------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wabroadcast", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def process_env(ctx: AppContext) -> dict[str, str]:
    return {
        "WABROADCAST_DATABASE_URL": ctx.settings.database_url,
        "WABROADCAST_SECRET_KEY": TEST_SECRET_KEY,
        "WABROADCAST_WORKER_POLL_S": "0.05",
        "WABROADCAST_LOG_LEVEL": "warning",
    }


async def test_cli_sets_and_validates_caps(ctx: AppContext, tenant: TenantFixture) -> None:
    env = process_env(ctx)
    done = cli(
        env,
        "session", "set", tenant.session_id,
        "--daily-cap", "40", "--warmup-days", "5", "--warmup-start-cap", "10",
        "--warmup-growth", "1.5", "--pause-error-rate", "0.25", "--no-check-numbers",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, tenant.session_id)
        assert row is not None
        stored = (row.daily_cap, row.warmup_days, row.warmup_start_cap, row.warmup_growth)
        assert stored == (40, 5, 10, 1.5)
        assert (row.pause_error_rate, row.check_numbers) == (0.25, False)
        assert row.warmup_started_at is not None
    # An option not given keeps its value.
    again = cli(env, "session", "set", tenant.session_id, "--check-numbers")
    assert again.returncode == 0, again.stderr
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, tenant.session_id)
        assert row is not None
        assert (row.daily_cap, row.pause_error_rate, row.check_numbers) == (40, 0.25, True)
    refused = cli(env, "session", "set", tenant.session_id, "--pause-error-rate", "0")
    assert refused.returncode == 2, refused.stderr
    assert "--pause-error-rate" in refused.stderr
    helped = cli(env, "session", "set", "--help")
    assert "--daily-cap" in helped.stdout
    assert "--check-numbers" in helped.stdout


@contextlib.contextmanager
def workers(
    env: dict[str, str], folder: Path, count: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(count):
            with (folder / f"worker{n}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "wabroadcast", "worker"],
                        env={**os.environ, **env},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_a_cap_of_2_holds_across_two_worker_processes(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    """Both workers claim for the session over and over; together they send exactly 2.

    The worker processes run on the wall clock: so does this test's API here."""
    clock.set(datetime.now(UTC))
    async with ctx.database.transaction() as db:
        await db.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == tenant.session_id)
            .values(daily_cap=2, max_concurrency=2)
        )
    broadcast_id = await create(client, tenant, il_numbers(6))

    async def lease_epochs() -> int:
        async with ctx.database.transaction() as db:
            row = await db.get(WhatsAppSession, tenant.session_id, populate_existing=True)
            assert row is not None
            return row.lease_epoch_seq

    async def simulated() -> int:
        async with ctx.database.transaction() as db:
            return int(
                (await db.execute(select(func.count()).select_from(SimulatorSend))).scalar_one()
            )

    with workers(process_env(ctx), tmp_path, 2) as running:
        deadline = time.monotonic() + 60
        while (await broadcast(client, tenant, broadcast_id))["sent_count"] < 2:
            assert all(p.poll() is None for p in running), (tmp_path / "worker0.log").read_text()
            assert time.monotonic() < deadline, "the workers sent nothing"
            await _pause()
        # Both workers go on taking the session's slots and claiming (nothing): wait for
        # many more leases than there are sends left, so each had every chance to send.
        seen = await lease_epochs()
        while await lease_epochs() < seen + 40:
            assert all(p.poll() is None for p in running), (tmp_path / "worker1.log").read_text()
            assert time.monotonic() < deadline, "the workers stopped looking"
            await _pause()
    b = await broadcast(client, tenant, broadcast_id)
    assert (b["sent_count"], b["queued_count"]) == (2, 4)
    assert b["waiting_reason"] == "daily_cap"
    assert len(await recipients(client, tenant, broadcast_id, "queued")) == 4
    assert await simulated() == 2
    today = clock.now().astimezone(ZoneInfo("Asia/Jerusalem")).date()
    assert (await counter(ctx, tenant.session_id)).get(today) == 2
    await counts_match_rows(ctx, broadcast_id)


async def _pause() -> None:
    """Give the worker processes the database between two looks."""
    await asyncio.sleep(0.05)
