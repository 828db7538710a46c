"""Number checks before sending, on both databases: a number not on WhatsApp fails
``NOT_ON_WHATSAPP`` without a send, answers are cached per tenant for 30 days, and a
check that fails lets the sends go out unchecked.

The simulator (checks turned on for its session) proves no send was tried through
its send log; WAHA and Evolution are their fakes over real HTTP; Baileys is the
real gateway code with a fake WhatsApp socket behind it (skipped without Node).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from tests.integration.test_dashboard_connect import FakeGateway, fake_gateway
from tests.support.dispatch import (
    all_recipients,
    broadcast,
    counts_match_rows,
    dispatcher,
    drain,
    sends,
    unpaced,
)
from tests.support.dispatch import create as create_broadcast
from tests.support.dispatch import scenario as set_scenario
from tests.support.fake_evolution import FakeEvolution, serve_fake_evolution
from tests.support.fake_waha import FakeWaha, serve_fake_waha
from tests.support.providers import add_session, simulator_of
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import NumberCheck, WhatsAppSession
from wabroadcast.dispatch.number_checks import NOT_ON_WHATSAPP_MESSAGE
from wabroadcast.dispatch.repository.number_checks import FRESH_FOR

NUMBERS = ["+972502345671", "+972502345672", "+972502345673"]
OFF_WHATSAPP = NUMBERS[1]
SESSIONS_API = "/api/whatsapp/sessions"


def digits(phone: str) -> str:
    return phone.removeprefix("+")


async def check_numbers(ctx: AppContext, session_id: str, setting: bool | None) -> None:
    """The session's ``check_numbers`` setting (None: the provider's default)."""
    async with ctx.database.transaction() as db:
        await db.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == session_id)
            .values(check_numbers=setting)
        )


async def cached(ctx: AppContext, tenant_id: int) -> dict[str, bool]:
    async with ctx.database.transaction() as db:
        rows = await db.execute(
            select(NumberCheck.phone, NumberCheck.on_whatsapp).where(
                NumberCheck.tenant_id == tenant_id
            )
        )
        return {str(phone): bool(on) for phone, on in rows.all()}


async def sent_and_failed(
    client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int
) -> dict[str, dict[str, object]]:
    return {row["phone"]: row for row in await all_recipients(client, tenant, broadcast_id)}


def assert_failed_unsent(row: dict[str, object]) -> None:
    assert (row["status"], row["error_code"]) == ("failed", "NOT_ON_WHATSAPP")
    assert row["error_message"] == NOT_ON_WHATSAPP_MESSAGE
    assert row["provider_message_id"] is None


# --- the simulator ---------------------------------------------------------------------


@pytest.fixture
async def checking(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> TenantFixture:
    """The tenant's simulator session, unpaced, checking numbers, one number failing
    ``NOT_ON_WHATSAPP``."""
    await unpaced(ctx, tenant.session_id)
    await check_numbers(ctx, tenant.session_id, True)
    await set_scenario(client, tenant, fail_numbers={OFF_WHATSAPP: "NOT_ON_WHATSAPP"})
    return tenant


def checked_phones(ctx: AppContext) -> list[str]:
    """Every phone the simulator was asked about, one entry per time asked."""
    return sorted(phone for call in simulator_of(ctx).number_checks for phone in call.phones)


async def test_a_number_not_on_whatsapp_fails_and_no_send_is_tried(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock, checking: TenantFixture
) -> None:
    broadcast_id = await create_broadcast(client, checking, NUMBERS)
    await drain(ctx, clock)

    body = await broadcast(client, checking, broadcast_id)
    assert (body["status"], body["sent_count"], body["failed_count"]) == ("partial", 2, 1)
    rows = await sent_and_failed(client, checking, broadcast_id)
    assert_failed_unsent(rows[OFF_WHATSAPP])
    assert [rows[p]["status"] for p in (NUMBERS[0], NUMBERS[2])] == ["sent", "sent"]
    logged = [send["phone"] for send in (await sends(client, checking))["items"]]
    assert sorted(logged) == [NUMBERS[0], NUMBERS[2]]
    # Each number asked about once, for this session only, in batches (a call's numbers).
    assert checked_phones(ctx) == sorted(NUMBERS)
    assert len(simulator_of(ctx).number_checks) < len(NUMBERS)
    assert {c.session_id for c in simulator_of(ctx).number_checks} == {checking.session_id}
    assert await cached(ctx, checking.tenant_id) == {
        NUMBERS[0]: True,
        OFF_WHATSAPP: False,
        NUMBERS[2]: True,
    }
    await counts_match_rows(ctx, broadcast_id)


async def test_a_number_failed_by_the_check_does_not_use_up_the_daily_cap(
    client: httpx.AsyncClient, ctx: AppContext, checking: TenantFixture
) -> None:
    async with ctx.database.transaction() as db:
        await db.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.id == checking.session_id)
            .values(daily_cap=2)
        )
    broadcast_id = await create_broadcast(client, checking, NUMBERS)
    await dispatcher(ctx).run_until_idle()
    body = await broadcast(client, checking, broadcast_id)
    # Two messages sent today: the third claim, failed by the check, was given back.
    assert (body["status"], body["sent_count"], body["failed_count"]) == ("partial", 2, 1)
    session = (
        await client.get(f"{SESSIONS_API}/{checking.session_id}", headers=checking.headers)
    ).json()
    assert (session["cap_today"], session["sent_today"]) == (2, 2)


async def test_answers_are_cached_per_tenant_for_30_days(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock, checking: TenantFixture
) -> None:
    await create_broadcast(client, checking, NUMBERS)
    await drain(ctx, clock)
    assert checked_phones(ctx) == sorted(NUMBERS)

    # 29 days on: the same numbers are not asked about again, and the one not on
    # WhatsApp fails again from the cache, still without a send.
    clock.advance((FRESH_FOR - timedelta(days=1)).total_seconds())
    again = await create_broadcast(client, checking, NUMBERS, message="again")
    await drain(ctx, clock)
    assert checked_phones(ctx) == sorted(NUMBERS)
    rows = await sent_and_failed(client, checking, again)
    assert_failed_unsent(rows[OFF_WHATSAPP])
    logged = [send["phone"] for send in (await sends(client, checking))["items"]]
    assert OFF_WHATSAPP not in logged
    assert len(logged) == 4

    # Another tenant's answers are its own: its numbers are asked about.
    other = await make_tenant(ctx, name="Other")
    await unpaced(ctx, other.session_id)
    await check_numbers(ctx, other.session_id, True)
    await create_broadcast(client, other, [NUMBERS[0]])
    await drain(ctx, clock)
    assert checked_phones(ctx) == sorted([*NUMBERS, NUMBERS[0]])

    # Over 30 days since the first check: asked about again (and the answers renewed).
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    third = await create_broadcast(client, checking, NUMBERS, message="third")
    await drain(ctx, clock)
    assert checked_phones(ctx) == sorted([*NUMBERS, NUMBERS[0], *NUMBERS])
    assert_failed_unsent((await sent_and_failed(client, checking, third))[OFF_WHATSAPP])


async def test_the_simulator_checks_nothing_unless_the_session_says_so(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    await unpaced(ctx, tenant.session_id)
    await set_scenario(client, tenant, fail_numbers={OFF_WHATSAPP: "NOT_ON_WHATSAPP"})
    broadcast_id = await create_broadcast(client, tenant, NUMBERS)
    await drain(ctx, clock)
    assert simulator_of(ctx).number_checks == []
    rows = await sent_and_failed(client, tenant, broadcast_id)
    # Failed by the send itself: the send was tried.
    assert rows[OFF_WHATSAPP]["error_code"] == "NOT_ON_WHATSAPP"
    logged = [send["phone"] for send in (await sends(client, tenant))["items"]]
    assert sorted(logged) == sorted(NUMBERS)
    assert await cached(ctx, tenant.tenant_id) == {}


# --- WAHA ------------------------------------------------------------------------------

WAHA_KEY = "waha-api-key-0001"


@pytest.fixture
def fake_waha() -> Iterator[tuple[FakeWaha, str]]:
    fake = FakeWaha(api_key=WAHA_KEY)
    with serve_fake_waha(fake) as base_url:
        yield fake, base_url


@pytest.fixture
async def waha(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    fake_waha: tuple[FakeWaha, str],
) -> AsyncIterator[FakeWaha]:
    fake, base_url = fake_waha
    config = {"base_url": base_url, "api_key": WAHA_KEY, "hmac_key": "k" * 24}
    await add_session(client, tenant, "waha_1", "waha", config, default=True)
    await unpaced(ctx, "waha_1")
    yield fake
    await ctx.providers.aclose()


async def test_waha_checks_each_number_once_in_30_days_and_skips_its_own_check(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: FakeWaha,
) -> None:
    waha.not_on_whatsapp.add(digits(OFF_WHATSAPP))
    first = await create_broadcast(client, tenant, NUMBERS)
    await drain(ctx, clock)
    assert_failed_unsent((await sent_and_failed(client, tenant, first))[OFF_WHATSAPP])
    assert waha.sends_to(digits(OFF_WHATSAPP)) == []
    assert sorted(check.phone or "" for check in waha.checks) == sorted(map(digits, NUMBERS))

    second = await create_broadcast(client, tenant, NUMBERS, message="again")
    await drain(ctx, clock)
    rows = await sent_and_failed(client, tenant, second)
    assert_failed_unsent(rows[OFF_WHATSAPP])
    assert [rows[p]["status"] for p in (NUMBERS[0], NUMBERS[2])] == ["sent", "sent"]
    # Cached: no check-exists at all, neither the dispatcher's nor WAHA's own per send.
    assert len(waha.checks) == 3
    assert len(waha.sends) == 4
    assert waha.sends_to(digits(OFF_WHATSAPP)) == []


async def test_a_waha_session_with_checks_off_checks_each_send_itself(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    waha: FakeWaha,
) -> None:
    await check_numbers(ctx, "waha_1", False)
    waha.not_on_whatsapp.add(digits(OFF_WHATSAPP))
    for message in ("first", "second"):
        broadcast_id = await create_broadcast(client, tenant, NUMBERS, message=message)
        await drain(ctx, clock)
        rows = await sent_and_failed(client, tenant, broadcast_id)
        # WAHA's own check before each send: not cached, nothing sent to the number.
        assert rows[OFF_WHATSAPP]["error_code"] == "NOT_ON_WHATSAPP"
    assert len(waha.checks) == 6
    assert waha.sends_to(digits(OFF_WHATSAPP)) == []
    assert await cached(ctx, tenant.tenant_id) == {}


# --- Evolution -------------------------------------------------------------------------

EVOLUTION_KEY = "EVOLUTION-GLOBAL-KEY-0001"
INSTANCE = "shop1"


@pytest.fixture
def fake_evolution() -> Iterator[tuple[FakeEvolution, str]]:
    fake = FakeEvolution(api_key=EVOLUTION_KEY)
    fake.add_instance(INSTANCE)
    with serve_fake_evolution(fake) as base_url:
        yield fake, base_url


@pytest.fixture
async def evolution(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    fake_evolution: tuple[FakeEvolution, str],
) -> AsyncIterator[FakeEvolution]:
    fake, base_url = fake_evolution
    config = {"base_url": base_url, "api_key": EVOLUTION_KEY, "instance": INSTANCE}
    await add_session(client, tenant, "evo_1", "evolution", config, default=True)
    await unpaced(ctx, "evo_1")
    yield fake
    await ctx.providers.aclose()


async def test_evolution_asks_whatsapp_numbers_and_sends_only_to_those_on_it(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: FakeEvolution,
) -> None:
    evolution.mark_not_on_whatsapp(digits(OFF_WHATSAPP))
    first = await create_broadcast(client, tenant, NUMBERS)
    await drain(ctx, clock)
    rows = await sent_and_failed(client, tenant, first)
    assert_failed_unsent(rows[OFF_WHATSAPP])
    assert rows[OFF_WHATSAPP]["attempts"] == 1
    assert evolution.sends_to(digits(OFF_WHATSAPP)) == []
    assert sorted(n for check in evolution.checks for n in check) == sorted(map(digits, NUMBERS))
    assert [rows[p]["status"] for p in (NUMBERS[0], NUMBERS[2])] == ["sent", "sent"]

    await create_broadcast(client, tenant, NUMBERS, message="again")
    await drain(ctx, clock)
    assert len(evolution.checks) == len(NUMBERS)  # one call per send, none the second time
    assert len(evolution.sends) == 4


async def test_a_failing_check_lets_the_sends_go_out_unchecked(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    evolution: FakeEvolution,
) -> None:
    evolution.check_refusal = 503
    broadcast_id = await create_broadcast(client, tenant, NUMBERS)
    await drain(ctx, clock)
    body = await broadcast(client, tenant, broadcast_id)
    assert (body["status"], body["sent_count"]) == ("completed", 3)
    assert evolution.checks  # it was asked, and failed
    assert await cached(ctx, tenant.tenant_id) == {}
    assert sorted(s.body["number"] for s in evolution.sends if isinstance(s.body, dict)) == sorted(
        map(digits, NUMBERS)
    )


# --- Baileys (our gateway) -------------------------------------------------------------

BAILEYS_SESSION = "phone"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[FakeGateway]:
    with fake_gateway(tmp_path) as running:
        yield running


def gateway_numbers(
    gateway: FakeGateway, not_on_whatsapp: list[str] | None = None
) -> list[list[str]]:
    """Set the fake socket's numbers not on WhatsApp; every onWhatsApp query it got."""
    body = {} if not_on_whatsapp is None else {"not_on_whatsapp": not_on_whatsapp}
    response = httpx.post(
        f"{gateway.base_url}/_test/sessions/{BAILEYS_SESSION}/numbers",
        json=body,
        headers={"X-Gateway-Token": gateway.token},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    checks: list[list[str]] = response.json()["checks"]
    return checks


async def test_baileys_checks_through_the_gateways_on_whatsapp(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    gateway: FakeGateway,
    tmp_path: Path,
) -> None:
    config = {"base_url": gateway.base_url, "token": gateway.token}
    await add_session(client, tenant, BAILEYS_SESSION, "baileys", config, default=True)
    connect = await client.post(f"{SESSIONS_API}/{BAILEYS_SESSION}/connect", headers=tenant.headers)
    assert connect.status_code == 200, connect.text
    gateway.emit(
        BAILEYS_SESSION, {"connection": "open"}, user={"id": "972509999999:3@s.whatsapp.net"}
    )
    gateway.wait_for_state(BAILEYS_SESSION, "connected")
    gateway_numbers(gateway, [digits(OFF_WHATSAPP)])
    await unpaced(ctx, BAILEYS_SESSION)

    broadcast_id = await create_broadcast(client, tenant, NUMBERS)
    await drain(ctx, clock)
    rows = await sent_and_failed(client, tenant, broadcast_id)
    assert_failed_unsent(rows[OFF_WHATSAPP])
    assert [rows[p]["status"] for p in (NUMBERS[0], NUMBERS[2])] == ["sent", "sent"]
    checks = gateway_numbers(gateway)
    assert sorted(n for query in checks for n in query) == sorted(map(digits, NUMBERS))
    # What the gateway sent: the two numbers on WhatsApp, nothing else.
    sent_log = tmp_path / "gateway-data" / BAILEYS_SESSION / "sent.jsonl"
    sent_ids = sorted(json.loads(line)["request_id"] for line in sent_log.read_text().splitlines())
    assert sent_ids == sorted(str(rows[p]["provider_message_id"]) for p in (NUMBERS[0], NUMBERS[2]))

    await create_broadcast(client, tenant, NUMBERS, message="again")
    await drain(ctx, clock)
    assert gateway_numbers(gateway) == checks  # cached: not asked again
    assert len(sent_log.read_text().splitlines()) == 4
