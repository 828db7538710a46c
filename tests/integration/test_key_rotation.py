"""API keys that rotate, on both databases: the replaced key works through its grace period
(API and dashboard sign-in alike) and not a second longer."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tests.support.tenants import START, TenantFixture, make_tenant
from wabroadcast.api.app import create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.domain.errors import NotFound, ValidationFailed
from wabroadcast.tenants.service import (
    RotatedKey,
    TenantSummary,
    hash_api_key,
    list_tenants,
    rotate_api_key,
)

API = "/api/whatsapp/broadcasts"
GRACE = timedelta(hours=24)
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


async def rotate(ctx: AppContext, tenant_id: int, grace: timedelta) -> RotatedKey:
    async with ctx.database.transaction() as session:
        return await rotate_api_key(session, ctx.clock, tenant_id, grace)


async def listed(ctx: AppContext) -> list[TenantSummary]:
    async with ctx.database.transaction() as session:
        return await list_tenants(session, ctx.clock)


async def status_with(client: httpx.AsyncClient, api_key: str) -> int:
    response = await client.get(API, headers={"Authorization": f"Bearer {api_key}"})
    return response.status_code


async def sign_in_status(ctx: AppContext, api_key: str) -> int:
    """Sign in to the dashboard with ``api_key`` from a browser of its own: 303 or 401."""
    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as browser:
        form = await browser.get("/sign-in")
        found = TOKEN_FIELD.search(form.text)
        assert found is not None, form.text[:2000]
        response = await browser.post(
            "/sign-in", data={"csrf_token": found.group(1), "api_key": api_key, "next": "/"}
        )
        return response.status_code


async def test_the_old_key_works_until_its_grace_ends_and_the_new_one_at_once(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    rotated = await rotate(ctx, tenant.tenant_id, GRACE)

    assert rotated.api_key != tenant.api_key
    assert rotated.api_key_prefix == rotated.api_key[:12]
    assert rotated.previous_key_prefix == tenant.api_key[:12]
    assert rotated.previous_key_valid_until == START + GRACE
    assert await status_with(client, rotated.api_key) == 200
    assert await status_with(client, tenant.api_key) == 200

    clock.set(START + GRACE - timedelta(seconds=1))
    assert await status_with(client, tenant.api_key) == 200
    clock.set(START + GRACE)
    assert await status_with(client, tenant.api_key) == 401
    assert await status_with(client, rotated.api_key) == 200


async def test_a_zero_grace_ends_the_old_key_at_once(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    rotated = await rotate(ctx, tenant.tenant_id, timedelta(0))

    assert (rotated.previous_key_prefix, rotated.previous_key_valid_until) == (None, None)
    assert await status_with(client, tenant.api_key) == 401
    assert await status_with(client, rotated.api_key) == 200
    assert await sign_in_status(ctx, tenant.api_key) == 401


async def test_dashboard_sign_in_with_the_old_key_follows_the_same_rule(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    rotated = await rotate(ctx, tenant.tenant_id, GRACE)

    clock.set(START + GRACE - timedelta(seconds=1))
    assert await sign_in_status(ctx, tenant.api_key) == 303
    clock.set(START + GRACE)
    assert await sign_in_status(ctx, tenant.api_key) == 401
    assert await sign_in_status(ctx, rotated.api_key) == 303


async def test_rotating_again_within_the_grace_ends_the_first_key_at_once(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture, clock: FrozenClock
) -> None:
    second = await rotate(ctx, tenant.tenant_id, GRACE)
    clock.advance(600)
    third = await rotate(ctx, tenant.tenant_id, timedelta(hours=1))

    assert third.previous_key_prefix == second.api_key_prefix
    assert third.previous_key_valid_until == START + timedelta(seconds=600, hours=1)
    assert await status_with(client, tenant.api_key) == 401
    assert await status_with(client, second.api_key) == 200
    assert await status_with(client, third.api_key) == 200


async def test_one_tenants_rotation_leaves_the_others_keys_alone(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    other = await make_tenant(ctx, name="Other")
    await rotate(ctx, tenant.tenant_id, timedelta(0))

    assert await status_with(client, other.api_key) == 200


async def test_an_unknown_tenant_or_a_negative_grace_is_refused(
    ctx: AppContext, tenant: TenantFixture
) -> None:
    with pytest.raises(NotFound, match="tenant 999 not found"):
        await rotate(ctx, 999, GRACE)
    with pytest.raises(ValidationFailed, match="grace"):
        await rotate(ctx, tenant.tenant_id, timedelta(seconds=-1))
    with pytest.raises(ValidationFailed, match="grace"):
        await rotate(ctx, tenant.tenant_id, timedelta(days=366))


async def test_the_list_shows_prefixes_and_a_previous_key_only_while_it_works(
    ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    other = await make_tenant(ctx, name="Other", region="US")
    rotated = await rotate(ctx, tenant.tenant_id, GRACE)

    first, second = await listed(ctx)
    assert (first.tenant_id, first.name, first.region) == (tenant.tenant_id, "Acme", "IL")
    assert first.api_key_prefix == rotated.api_key_prefix
    assert first.previous_key_prefix == tenant.api_key[:12]
    assert first.previous_key_valid_until == START + GRACE
    assert (first.key_rotated_at, first.created_at) == (START, START)
    assert (second.tenant_id, second.region) == (other.tenant_id, "US")
    assert (second.previous_key_prefix, second.key_rotated_at) == (None, None)
    shown = repr([first, second])
    for secret in (tenant.api_key, rotated.api_key, other.api_key, hash_api_key(other.api_key)):
        assert secret not in shown

    clock.set(START + GRACE)
    after = (await listed(ctx))[0]
    assert (after.previous_key_prefix, after.previous_key_valid_until) == (None, None)
