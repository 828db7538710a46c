"""Rate limits on both databases: per tenant on the JSON API, per address on dashboard sign-in.

The clock is frozen, so "a burst inside one minute" is exactly that, whatever
the wall clock does; PostgreSQL tests also run two apps on one database, as
two API processes would.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from structlog.testing import capture_logs

from tests.support.databases import pg_url, truncate_all
from tests.support.tenants import TEST_SECRET_KEY, TenantFixture, make_tenant
from wabroadcast.api.app import build_context, create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.db.models import RateLimitBucket, Tenant
from wabroadcast.ratelimit.bucket import Limit
from wabroadcast.ratelimit.store import BucketStore, DatabaseBuckets, MemoryBuckets
from wabroadcast.tenants.service import hash_api_key

LIST = "/api/whatsapp/broadcasts"
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class App:
    ctx: AppContext
    http: httpx.AsyncClient


@asynccontextmanager
async def running(
    settings: Settings,
    clock: FrozenClock,
    client: tuple[str, int] = ("127.0.0.1", 123),
    **knobs: Any,
) -> AsyncIterator[App]:
    """An app of its own (as another API process would be) with some settings changed."""
    ctx = build_context(settings.model_copy(update=knobs), clock=clock)
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False, client=client)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield App(ctx, http)
    finally:
        await ctx.providers.aclose()
        await ctx.database.dispose()


async def statuses(http: httpx.AsyncClient, tenant: TenantFixture, count: int) -> list[int]:
    return [(await http.get(LIST, headers=tenant.headers)).status_code for _ in range(count)]


def assert_rate_limited(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(retry_after)
    body = response.json()
    assert body["success"] is False
    assert body["error_code"] == "RATE_LIMITED"
    assert body["details"] == {"retry_after_seconds": retry_after}
    assert "per minute" in body["message"]


async def bucket_rows(ctx: AppContext) -> dict[str, float]:
    async with ctx.database.transaction() as db:
        rows = await db.execute(select(RateLimitBucket.bucket_key, RateLimitBucket.tokens))
    return {str(key): float(tokens) for key, tokens in rows.all()}


# --- the JSON API -------------------------------------------------------------------


async def test_a_burst_of_700_at_one_instant_lets_600_through_and_no_other_tenant_is_touched(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    assert ctx.settings.rate_limit_per_minute == 600  # the default
    other = await make_tenant(ctx, name="Other shop")
    responses = [await client.get(LIST, headers=tenant.headers) for _ in range(700)]
    assert Counter(r.status_code for r in responses) == {200: 600, 429: 100}
    assert all(r.status_code == 200 for r in responses[:600])
    for refused in responses[600:]:
        assert_rate_limited(refused, retry_after=1)
    # The same instant, another tenant: its own bucket.
    assert await statuses(client, other, 3) == [200, 200, 200]
    # A second later ten tokens are back (600 per 60 s), and only ten.
    clock.advance(1)
    assert await statuses(client, tenant, 11) == [200] * 10 + [429]
    clock.advance(60)
    assert await statuses(client, tenant, 600) == [200] * 600


async def test_a_small_limit_refills_one_request_at_a_time(
    settings: Settings, clock: FrozenClock
) -> None:
    async with running(settings, clock, rate_limit_per_minute=5) as app:
        tenant = await make_tenant(app.ctx)
        assert await statuses(app.http, tenant, 5) == [200] * 5
        assert_rate_limited(await app.http.get(LIST, headers=tenant.headers), retry_after=12)
        clock.advance(11)
        assert_rate_limited(await app.http.get(LIST, headers=tenant.headers), retry_after=1)
        clock.advance(1)
        assert await statuses(app.http, tenant, 2) == [200, 429]
        # A burst straddling a minute boundary gains nothing: the bucket is continuous.
        clock.set(clock.now().replace(second=59, microsecond=990_000) + timedelta(minutes=5))
        assert await statuses(app.http, tenant, 6) == [200] * 5 + [429]
        clock.advance(0.02)
        assert await statuses(app.http, tenant, 5) == [429] * 5


async def test_refusals_are_logged_without_the_api_key(
    settings: Settings, clock: FrozenClock
) -> None:
    async with running(settings, clock, rate_limit_per_minute=1) as app:
        tenant = await make_tenant(app.ctx)
        with capture_logs() as logs:
            assert await statuses(app.http, tenant, 2) == [200, 429]
    refusals = [entry for entry in logs if entry["event"] == "rate limited"]
    assert refusals == [
        {
            "event": "rate limited",
            "log_level": "warning",
            "limit": "api",
            "tenant_id": tenant.tenant_id,
            "retry_after_s": 60,
        }
    ]
    assert tenant.api_key not in repr(logs)


async def test_a_rotated_key_and_its_successor_share_the_tenants_limit(
    settings: Settings, clock: FrozenClock
) -> None:
    async with running(settings, clock, rate_limit_per_minute=4) as app:
        tenant = await make_tenant(app.ctx)
        successor = "wab_successor-key-for-the-rate-limit-test"
        async with app.ctx.database.transaction() as db:
            await db.execute(
                update(Tenant)
                .where(Tenant.id == tenant.tenant_id)
                .values(
                    api_key_hash=hash_api_key(successor),
                    previous_api_key_hash=hash_api_key(tenant.api_key),
                    previous_key_expires_at=clock.now() + timedelta(hours=1),
                )
            )
        new = TenantFixture(tenant.tenant_id, successor, tenant.session_id)
        assert await statuses(app.http, tenant, 2) == [200, 200]
        assert await statuses(app.http, new, 2) == [200, 200]
        assert await statuses(app.http, new, 1) == [429]
        assert await statuses(app.http, tenant, 1) == [429]


async def test_only_routes_with_an_api_key_are_limited(
    settings: Settings, clock: FrozenClock
) -> None:
    async with running(settings, clock, rate_limit_per_minute=1) as app:
        tenant = await make_tenant(app.ctx)
        assert await statuses(app.http, tenant, 2) == [200, 429]
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            answers = [(await app.http.get(path)).status_code for _ in range(3)]
            assert answers == [200, 200, 200], path
        # Authentication comes first: a wrong key is 401, not 429, and costs the tenant nothing.
        wrong = await app.http.get(LIST, headers={"Authorization": "Bearer wab_nope"})
        assert wrong.status_code == 401
        # The other API-key routes share the same bucket.
        metrics = await app.http.get("/api/whatsapp/metrics", headers=tenant.headers)
        assert metrics.status_code == 429


async def test_zero_turns_the_api_limit_off(settings: Settings, clock: FrozenClock) -> None:
    async with running(settings, clock, rate_limit_per_minute=0) as app:
        tenant = await make_tenant(app.ctx)
        assert app.ctx.rate_limits.api is None
        assert await statuses(app.http, tenant, 50) == [200] * 50


def test_every_operation_with_an_api_key_documents_429() -> None:
    document = create_app(build_context(Settings())).openapi()
    secured = [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    ]
    assert len(secured) >= 10
    for method, path, operation in secured:
        assert "429" in operation["responses"], (method, path)
        assert "RATE_LIMITED" in operation["responses"]["429"]["description"], (method, path)


# --- several API processes on one PostgreSQL database ----------------------------------


@pytest.fixture
def pg_settings(pg_database: str) -> Settings:
    """Settings on an emptied PostgreSQL database (SQLite is served by one process)."""
    truncate_all(pg_database)
    return Settings(database_url=pg_url(pg_database), secret_key=SecretStr(TEST_SECRET_KEY))


@pytest.mark.postgres
async def test_two_api_processes_share_one_tenants_limit(
    pg_settings: Settings, clock: FrozenClock
) -> None:
    settings = pg_settings
    async with (
        running(settings, clock, rate_limit_per_minute=6) as first,
        running(settings, clock, rate_limit_per_minute=6) as second,
    ):
        assert first.ctx.database.engine is not second.ctx.database.engine
        tenant = await make_tenant(first.ctx)
        assert await statuses(first.http, tenant, 3) == [200] * 3
        assert await statuses(second.http, tenant, 3) == [200] * 3
        assert_rate_limited(await first.http.get(LIST, headers=tenant.headers), retry_after=10)
        assert_rate_limited(await second.http.get(LIST, headers=tenant.headers), retry_after=10)
        assert await bucket_rows(first.ctx) == {f"api:{tenant.tenant_id}": 0.0}
        clock.advance(10)
        assert await statuses(second.http, tenant, 2) == [200, 429]
        assert await statuses(first.http, tenant, 1) == [429]


@pytest.mark.postgres
async def test_concurrent_requests_on_two_processes_never_exceed_the_limit(
    pg_settings: Settings, clock: FrozenClock
) -> None:
    settings = pg_settings
    async with (
        running(settings, clock, rate_limit_per_minute=10) as first,
        running(settings, clock, rate_limit_per_minute=10) as second,
    ):
        tenant = await make_tenant(first.ctx)
        calls = [app.http.get(LIST, headers=tenant.headers) for app in (first, second) * 15]
        answers = await asyncio.gather(*calls)
        assert Counter(r.status_code for r in answers) == {200: 10, 429: 20}


# --- the stores agree with the arithmetic -------------------------------------------------


@pytest.fixture
async def store(ctx: AppContext) -> BucketStore:
    """The store the app uses: memory for SQLite, the table for PostgreSQL."""
    return ctx.rate_limits.store


async def test_the_store_follows_the_bucket_arithmetic(ctx: AppContext, store: BucketStore) -> None:
    assert isinstance(store, MemoryBuckets if ctx.database.is_sqlite else DatabaseBuckets)
    limit = Limit("test", 3, 30.0)  # a token every 10 s
    steps: list[tuple[str, float, bool, int]] = [
        ("take", 1000.0, True, 0),
        ("take", 1000.0, True, 0),
        ("peek", 1000.0, True, 0),
        ("take", 1000.0, True, 0),
        ("take", 1000.0, False, 10),
        ("peek", 1004.0, False, 6),
        ("take", 1010.0, True, 0),
        ("take", 1010.0, False, 10),
        ("take", 900.0, False, 10),  # the clock went back: nothing refilled
        ("take", 1019.5, False, 1),
        ("take", 1020.0, True, 0),
        ("take", 5000.0, True, 0),  # long idle: full again, never more
        ("take", 5000.0, True, 0),
        ("take", 5000.0, True, 0),
        ("take", 5000.0, False, 10),
    ]
    for n, (operation, now, allowed, retry) in enumerate(steps):
        run = store.take if operation == "take" else store.peek
        result = await run(limit.key("k"), now, limit)
        assert (result.allowed, result.retry_after_s) == (allowed, retry), (n, operation, now)


async def test_the_store_refills_nothing_when_the_clock_goes_back(store: BucketStore) -> None:
    limit = Limit("test", 3, 30.0)  # a token every 10 s
    key = limit.key("back")
    assert [(await store.take(key, 1000.0, limit)).allowed for _ in range(2)] == [True, True]
    # 100 s back: no negative refill (the one token left is still there) ...
    assert (await store.take(key, 900.0, limit)).allowed
    # ... and the bucket keeps its later time, so 5 s after it only half a token is back.
    assert not (await store.take(key, 900.0, limit)).allowed
    refused = await store.take(key, 1005.0, limit)
    assert (refused.allowed, refused.retry_after_s) == (False, 5)
    assert (await store.take(key, 1010.0, limit)).allowed


async def test_idle_buckets_are_purged_at_most_once_a_minute(
    ctx: AppContext, store: BucketStore, clock: FrozenClock
) -> None:
    async def remembered() -> set[str]:
        if isinstance(store, MemoryBuckets):
            return store.keys()
        return set(await bucket_rows(ctx))

    start = clock.now()
    limits = ctx.rate_limits
    for n in range(50):
        await limits.signin_failed(f"10.0.0.{n}", start)
    await limits.signin_failed("10.0.1.1", start + timedelta(seconds=10))
    assert len(await remembered()) == 51
    # 901 s on, the first 50 have been idle a whole window: full, so forgotten.
    await limits.signin_failed("10.0.2.2", start + timedelta(seconds=901))
    assert await remembered() == {"signin:10.0.1.1", "signin:10.0.2.2"}
    # 10.0.1.1 is idle a whole window 10 s later, but the last purge was 10 s ago.
    await limits.signin_failed("10.0.3.3", start + timedelta(seconds=911))
    assert "signin:10.0.1.1" in await remembered()
    await limits.signin_wait("10.0.4.4", start + timedelta(seconds=962))
    assert await remembered() == {"signin:10.0.2.2", "signin:10.0.3.3"}
    # The API's buckets are purged after their own (one-minute) window.
    await limits.api_call(1, start + timedelta(seconds=962))
    await limits.api_call(2, start + timedelta(seconds=1023))
    assert await remembered() == {"signin:10.0.2.2", "signin:10.0.3.3", "api:2"}


# --- dashboard sign-in ----------------------------------------------------------------


async def attempt(browser: httpx.AsyncClient, api_key: str) -> httpx.Response:
    form = await browser.get("/sign-in")
    found = TOKEN_FIELD.search(form.text)
    assert found is not None
    return await browser.post(
        "/sign-in", data={"csrf_token": found.group(1), "api_key": api_key, "next": "/"}
    )


def visible(page: httpx.Response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page.text).split())


async def test_ten_failed_sign_ins_lock_the_address_out_and_no_other(
    settings: Settings, clock: FrozenClock
) -> None:
    async with (
        running(settings, clock, client=("1.2.3.4", 123)) as guesser,
        running(settings, clock, client=("5.6.7.8", 456)) as neighbour,
    ):
        tenant = await make_tenant(guesser.ctx)
        for n in range(10):
            assert (await attempt(guesser.http, f"wab_guess-{n}")).status_code == 401, n
        for key in ("wab_guess-10", tenant.api_key):  # even the right key
            refused = await attempt(guesser.http, key)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "90"  # one attempt back every 90 s
            assert "please wait about 2 minutes and try again" in visible(refused)
            assert "wab_session" not in refused.cookies
        # Another address, the same instant: a wrong key is a plain 401, a right one signs in.
        assert (await attempt(neighbour.http, "wab_guess-x")).status_code == 401
        assert (await attempt(neighbour.http, tenant.api_key)).status_code == 303
        clock.advance(15 * 60)
        signed_in = await attempt(guesser.http, tenant.api_key)
        assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")


async def test_only_failed_sign_ins_count(settings: Settings, clock: FrozenClock) -> None:
    async with running(settings, clock) as app:
        tenant = await make_tenant(app.ctx)
        for n in range(9):
            assert (await attempt(app.http, f"wab_guess-{n}")).status_code == 401
        for _ in range(5):
            assert (await attempt(app.http, tenant.api_key)).status_code == 303
            app.http.cookies.clear()
        assert (await attempt(app.http, "wab_guess-9")).status_code == 401
        assert (await attempt(app.http, tenant.api_key)).status_code == 429
        # A token back after 90 s: one more attempt, then locked again.
        clock.advance(90)
        assert (await attempt(app.http, "wab_guess-10")).status_code == 401
        assert (await attempt(app.http, "wab_guess-11")).status_code == 429


async def test_the_wait_is_told_in_the_visitors_language(
    settings: Settings, clock: FrozenClock
) -> None:
    async with running(settings, clock, signin_max_failures=2, signin_window_s=60) as app:
        for n in range(2):
            assert (await attempt(app.http, f"wab_guess-{n}")).status_code == 401
        english = await attempt(app.http, "wab_guess-2")
        assert english.headers["Retry-After"] == "30"
        assert "please wait about a minute and try again" in visible(english)
        app.http.cookies.set("wab_lang", "he")
        hebrew = await attempt(app.http, "wab_guess-3")
        assert hebrew.status_code == 429
        assert "המתינו כדקה ונסו שוב" in visible(hebrew)
        clock.advance(60)
        app.http.cookies.set("wab_lang", "en")
        for n in range(2):
            assert (await attempt(app.http, f"wab_guess-{n}")).status_code == 401
    knobs = {"signin_max_failures": 1, "signin_window_s": 600}
    async with running(settings, clock, client=("9.9.9.9", 1), **knobs) as app:
        assert (await attempt(app.http, "wab_guess")).status_code == 401
        app.http.cookies.set("wab_lang", "he")
        hebrew = await attempt(app.http, "wab_guess")
        assert hebrew.headers["Retry-After"] == "600"
        assert "המתינו כ־10 דקות ונסו שוב" in visible(hebrew)


async def test_zero_failures_turns_the_sign_in_limit_off(
    settings: Settings, clock: FrozenClock
) -> None:
    async with running(settings, clock, signin_max_failures=0) as app:
        answers = [(await attempt(app.http, f"wab_guess-{n}")).status_code for n in range(15)]
        assert answers == [401] * 15
