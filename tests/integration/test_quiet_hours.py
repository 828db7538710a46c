"""Quiet hours on both databases (time controlled): no send starts inside the window, at
its edges and across midnight, the broadcast's own window or ``off`` instead of the
tenant's, each recipient's zone when asked; the settings API refuses bad values."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tests.integration.test_dashboard import sign_in, text_of
from tests.support.dispatch import URL, broadcast, dispatcher, recipients, sends, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.tenants.settings import get_settings_of, patch_from_options, update_settings

SETTINGS = "/api/whatsapp/settings"
JERUSALEM = ZoneInfo("Asia/Jerusalem")
US_NUMBER = "+12025550143"


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


def set_local(clock: FrozenClock, text: str) -> None:
    """Move the clock to a wall-clock time in Jerusalem."""
    clock.set(datetime.fromisoformat(text).replace(tzinfo=JERUSALEM).astimezone(UTC))


async def patch(
    client: httpx.AsyncClient, tenant: TenantFixture, **fields: object
) -> httpx.Response:
    return await client.patch(SETTINGS, json=fields, headers=tenant.headers)


async def post(
    client: httpx.AsyncClient, tenant: TenantFixture, numbers: list[str], **fields: object
) -> int:
    body = {"message": f"hello {len(numbers)} {fields}", "recipients": numbers, **fields}
    response = await client.post(URL, json=body, headers=tenant.headers)
    assert response.status_code == 202, response.text
    broadcast_id: int = response.json()["broadcast_id"]
    return broadcast_id


async def sent_phones(client: httpx.AsyncClient, tenant: TenantFixture) -> set[str]:
    return {item["phone"] for item in (await sends(client, tenant))["items"]}


async def queued(client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int) -> int:
    count: int = (await broadcast(client, tenant, broadcast_id))["queued_count"]
    return count


async def test_claimed_recipients_whose_quiet_hours_begin_before_their_send_go_back(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    """Claimed at 20:59:59, their turn comes at 21:00: they are not sent, but queued again
    with their attempt given back, and go at 08:30."""
    response = await patch(client, tenant, time_zone="Asia/Jerusalem", quiet_hours="21:00-08:30")
    assert response.status_code == 200, response.text
    numbers = il_numbers(3)
    set_local(clock, "2026-12-06T20:59:59")
    broadcast_id = await post(client, tenant, numbers)
    worker = dispatcher(ctx)
    await worker.tick()  # claims them; their slot has not run yet
    assert worker.claims == 1
    set_local(clock, "2026-12-06T21:00:00")
    await asyncio.gather(*worker._slots.values())

    assert await sent_phones(client, tenant) == set()
    items = await recipients(client, tenant, broadcast_id)
    assert {(item["status"], item["attempts"]) for item in items} == {("queued", 0)}
    assert (await broadcast(client, tenant, broadcast_id))["waiting_reason"] == "quiet_hours"

    set_local(clock, "2026-12-07T08:30:00")
    await worker.run_until_idle()
    assert await sent_phones(client, tenant) == set(numbers)


async def test_tenant_window_edges_across_midnight(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    response = await patch(client, tenant, time_zone="Asia/Jerusalem", quiet_hours="21:00-08:30")
    assert response.status_code == 200, response.text
    worker = dispatcher(ctx)

    set_local(clock, "2026-12-06T20:59:59")
    before = await post(client, tenant, il_numbers(2))
    await worker.run_until_idle()
    assert await queued(client, tenant, before) == 0
    assert await sent_phones(client, tenant) == set(il_numbers(2))

    set_local(clock, "2026-12-06T21:00:00")
    night = await post(client, tenant, il_numbers(3, start=10))
    await worker.run_until_idle()
    shown: dict[str, Any] = await broadcast(client, tenant, night)
    assert shown["queued_count"] == 3
    assert shown["waiting_reason"] == "quiet_hours"
    resumes = datetime(2026, 12, 7, 8, 30, tzinfo=JERUSALEM)
    assert datetime.fromisoformat(shown["estimated_finish_at"]) >= resumes

    set_local(clock, "2026-12-07T08:29:59")
    await worker.run_until_idle()
    assert await queued(client, tenant, night) == 3
    assert len(await sent_phones(client, tenant)) == 2

    set_local(clock, "2026-12-07T08:30:00")
    await worker.run_until_idle()
    shown = await broadcast(client, tenant, night)
    assert shown["queued_count"] == 0
    assert shown["waiting_reason"] is None
    assert await sent_phones(client, tenant) == set(il_numbers(2)) | set(il_numbers(3, start=10))


async def test_window_within_a_day(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    assert (await patch(client, tenant, quiet_hours="13:00-14:00")).status_code == 200
    worker = dispatcher(ctx)
    clock.set(datetime(2026, 12, 6, 13, 0, tzinfo=UTC))  # the tenant's zone: UTC
    broadcast_id = await post(client, tenant, il_numbers(2))
    await worker.run_until_idle()
    assert await queued(client, tenant, broadcast_id) == 2
    clock.set(datetime(2026, 12, 6, 13, 59, 59, tzinfo=UTC))
    await worker.run_until_idle()
    assert await queued(client, tenant, broadcast_id) == 2
    clock.set(datetime(2026, 12, 6, 14, 0, tzinfo=UTC))
    await worker.run_until_idle()
    assert await queued(client, tenant, broadcast_id) == 0
    assert len(await sent_phones(client, tenant)) == 2


async def test_broadcast_override_and_off(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    assert (await patch(client, tenant, quiet_hours="21:00-08:30")).status_code == 200
    worker = dispatcher(ctx)
    clock.set(datetime(2026, 12, 6, 22, 0, tzinfo=UTC))
    tenants_window = await post(client, tenant, il_numbers(1))
    switched_off = await post(client, tenant, il_numbers(1, start=5), quiet_hours="off")
    own_window = await post(client, tenant, il_numbers(1, start=9), quiet_hours="12:00-13:00")
    await worker.run_until_idle()
    assert await queued(client, tenant, tenants_window) == 1
    assert await queued(client, tenant, switched_off) == 0
    assert await queued(client, tenant, own_window) == 0  # 22:00 is outside 12:00-13:00
    clock.set(datetime(2026, 12, 7, 12, 30, tzinfo=UTC))
    late = await post(client, tenant, il_numbers(1, start=20), quiet_hours="12:00-13:00")
    await worker.run_until_idle()
    assert await queued(client, tenant, tenants_window) == 0  # 12:30 is outside 21:00-08:30
    assert await queued(client, tenant, late) == 1
    assert (await broadcast(client, tenant, late))["waiting_reason"] == "quiet_hours"


async def test_recipient_zones_send_only_to_the_awake(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    worker = dispatcher(ctx)
    israeli = il_numbers(1)[0]
    # 20:00 UTC: 22:00 in Jerusalem (quiet), 15:00 in New York (awake).
    clock.set(datetime(2026, 12, 6, 20, 0, tzinfo=UTC))
    broadcast_id = await post(
        client,
        tenant,
        [israeli, US_NUMBER],
        quiet_hours="21:00-08:30",
        quiet_hours_zone="recipient",
    )
    async with ctx.database.transaction() as session:
        zones = dict(
            (
                await session.execute(
                    select(WhatsAppBroadcastRecipient.phone, WhatsAppBroadcastRecipient.time_zone)
                )
            ).all()
        )
    assert zones == {israeli: "Asia/Jerusalem", US_NUMBER: "America/New_York"}
    await worker.run_until_idle()
    assert await sent_phones(client, tenant) == {US_NUMBER}
    statuses = {r["phone"]: r["status"] for r in await recipients(client, tenant, broadcast_id)}
    assert statuses[israeli] == "queued"
    # 07:00 UTC: 09:00 in Jerusalem (awake).
    clock.set(datetime(2026, 12, 7, 7, 0, tzinfo=UTC))
    await worker.run_until_idle()
    assert await sent_phones(client, tenant) == {israeli, US_NUMBER}


async def test_tenant_zone_broadcasts_store_no_recipient_zone(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await post(client, tenant, [US_NUMBER], quiet_hours="21:00-08:30")
    async with ctx.database.transaction() as session:
        stored = (await session.execute(select(WhatsAppBroadcastRecipient.time_zone))).scalars()
        assert list(stored) == [None]


async def test_settings_api(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shown = (await client.get(SETTINGS, headers=tenant.headers)).json()
    assert shown == {"time_zone": "UTC", "quiet_hours": None, "opt_out_reply": None}
    response = await patch(
        client,
        tenant,
        time_zone="Asia/Jerusalem",
        quiet_hours="21:00-08:30",
        opt_out_reply="You will not hear from us again.",
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "time_zone": "Asia/Jerusalem",
        "quiet_hours": "21:00-08:30",
        "opt_out_reply": "You will not hear from us again.",
    }
    # Only the fields given change; null clears.
    response = await patch(client, tenant, quiet_hours=None)
    assert response.json()["quiet_hours"] is None
    assert response.json()["time_zone"] == "Asia/Jerusalem"
    for bad in (
        {"time_zone": "Mars/Olympus"},
        {"time_zone": None},
        {"quiet_hours": "21:00-21:00"},
        {"quiet_hours": "25:00-08:00"},
        {"opt_out_reply": "x" * 1001},
        {"colour": "blue"},
    ):
        response = await patch(client, tenant, **bad)
        assert response.status_code == 422, bad
        assert response.json()["error_code"] == "VALIDATION_ERROR", response.text
    assert (await client.get(SETTINGS, headers=tenant.headers)).json()["time_zone"] == (
        "Asia/Jerusalem"
    )


async def test_broadcast_fields_are_validated(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    for bad in (
        {"quiet_hours": "21:00"},
        {"quiet_hours": "08:00-08:00"},
        {"quiet_hours_zone": "moon"},
    ):
        body = {"message": "hi", "recipients": il_numbers(1), **bad}
        response = await client.post(URL, json=body, headers=tenant.headers)
        assert response.status_code == 422, bad
        assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_settings_service_as_the_cli_uses_it(ctx: AppContext, tenant: TenantFixture) -> None:
    async with ctx.database.transaction() as session:
        await update_settings(
            session,
            tenant.tenant_id,
            patch_from_options(
                time_zone="Europe/London", quiet_hours="22:00-07:00", opt_out_reply="bye"
            ),
        )
        await update_settings(
            session,
            tenant.tenant_id,
            patch_from_options(time_zone=None, quiet_hours="off", opt_out_reply=""),
        )
        shown = await get_settings_of(session, tenant.tenant_id)
    assert (shown.time_zone, shown.quiet_hours, shown.opt_out_reply) == (
        "Europe/London",
        None,
        None,
    )
    with pytest.raises(ValidationFailed, match="quiet_hours"):
        patch_from_options(time_zone=None, quiet_hours="9-5", opt_out_reply=None)
    with pytest.raises(ValidationFailed, match="time_zone"):
        patch_from_options(time_zone="Nowhere/Land", quiet_hours=None, opt_out_reply=None)


async def test_sessions_page_sets_quiet_hours(ctx: AppContext, tenant: TenantFixture) -> None:
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as browser:
        token = await sign_in(browser, tenant)
        page = await browser.get("/sessions")
        assert "data-quiet-hours" in page.text
        assert 'name="time_zone" dir="ltr" maxlength="64" required value="UTC"' in page.text
        form = {"csrf_token": token, "time_zone": "Asia/Jerusalem", "quiet_hours": "21:00-08:30"}
        saved = await browser.post("/settings/quiet-hours", data=form)
        assert saved.status_code == 303
        assert saved.headers["location"] == "/sessions?notice=quiet_saved#quiet-hours"
        page = await browser.get("/sessions", params={"notice": "quiet_saved"})
        assert "Quiet hours and time zone saved." in text_of(page)
        assert 'value="21:00-08:30"' in page.text
        refused = await browser.post(
            "/settings/quiet-hours", data={**form, "quiet_hours": "21:00-21:00"}
        )
        assert refused.headers["location"] == "/sessions?notice=quiet_invalid#quiet-hours"
        cleared = await browser.post("/settings/quiet-hours", data={**form, "off": "yes"})
        assert cleared.status_code == 303
        without_token = await browser.post("/settings/quiet-hours", data={"off": "yes"})
        assert without_token.status_code in (400, 403)
    async with ctx.database.transaction() as session:
        shown = await get_settings_of(session, tenant.tenant_id)
    assert (shown.time_zone, shown.quiet_hours) == ("Asia/Jerusalem", None)


async def test_new_broadcast_form_and_csv_upload_take_quiet_hours(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as browser:
        token = await sign_in(browser, tenant)
        form = {"csrf_token": token, "message": "hi", "recipients": "0502345678"}
        refused = await browser.post("/broadcasts", data={**form, "quiet_hours": "9-5"})
        assert refused.status_code == 400
        assert "Quiet hours must be HH:MM-HH:MM" in text_of(refused)
        created = await browser.post("/broadcasts", data={**form, "quiet_hours": "22:00-07:00"})
        assert created.status_code == 303, created.text
    uploaded = await client.post(
        URL,
        data={"message": "csv", "quiet_hours": "off", "quiet_hours_zone": "recipient"},
        files={"file": ("list.csv", b"phone\n0502345679\n", "text/csv")},
        headers=tenant.headers,
    )
    assert uploaded.status_code == 202, uploaded.text
    bad_upload = await client.post(
        URL,
        data={"message": "csv", "quiet_hours_zone": "moon"},
        files={"file": ("list.csv", b"phone\n0502345670\n", "text/csv")},
        headers=tenant.headers,
    )
    assert bad_upload.status_code == 422
    async with ctx.database.transaction() as session:
        stored = (
            await session.execute(
                select(WhatsAppBroadcast.quiet_hours, WhatsAppBroadcast.quiet_hours_zone).order_by(
                    WhatsAppBroadcast.id
                )
            )
        ).all()
        zones = (await session.execute(select(WhatsAppBroadcastRecipient.time_zone))).scalars()
        assert sorted(zones, key=str) == ["Asia/Jerusalem", None]
    assert [tuple(row) for row in stored] == [("22:00-07:00", None), ("off", "recipient")]
