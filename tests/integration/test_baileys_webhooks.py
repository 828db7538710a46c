"""The Baileys gateway's calls: signed per session; statuses, 463 pausing, inbound kept."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
from sqlalchemy import func, select, update

from tests.support.dispatch import all_recipients, broadcast, counts_match_rows
from tests.support.tenants import TenantFixture
from wabroadcast.context import AppContext
from wabroadcast.db.models import (
    InboundMessageRow,
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    WhatsAppSession,
)
from wabroadcast.providers.baileys.webhook import sign

HOOK = "/api/whatsapp/webhooks/baileys"
NUMBERS = ["+972502345671", "+972502345672", "+972502345673"]


async def _baileys_session(client: httpx.AsyncClient, tenant: TenantFixture) -> str:
    response = await client.post(
        "/api/whatsapp/sessions",
        json={
            "session_id": "phone_1",
            "provider": "baileys",
            "config": {"base_url": "http://127.0.0.1:9", "token": "gateway-token-1"},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["config"]["token"] == "…en-1"
    assert body["webhook_url"].endswith("/api/whatsapp/webhooks/baileys")
    assert (body["rate_per_minute"], body["max_concurrency"]) == (8.0, 1)
    return "phone_1"


async def _sent_broadcast(ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture) -> int:
    """A broadcast on the Baileys session whose three recipients are sent (ids gw-0..2)."""
    response = await client.post(
        "/api/whatsapp/broadcasts",
        json={"message": "hi", "recipients": NUMBERS, "session_id": "phone_1"},
        headers=tenant.headers,
    )
    # The gateway at base_url refuses connections: the check cannot say, so it is accepted.
    assert response.status_code == 202, response.text
    broadcast_id: int = response.json()["broadcast_id"]
    async with ctx.database.transaction() as db:
        rows = (
            await db.execute(
                select(WhatsAppBroadcastRecipient)
                .where(WhatsAppBroadcastRecipient.broadcast_id == broadcast_id)
                .order_by(WhatsAppBroadcastRecipient.id)
            )
        ).scalars()
        for n, row in enumerate(rows):
            row.status = "sent"
            row.provider_message_id = f"gw-{n}"
            row.sent_at = ctx.clock.now()
        await db.execute(
            update(WhatsAppBroadcast)
            .where(WhatsAppBroadcast.id == broadcast_id)
            .values(status="running", queued_count=0, sent_count=3)
        )
    return broadcast_id


async def _secret(ctx: AppContext, session_id: str) -> str:
    async with ctx.database.transaction() as db:
        row = await db.get(WhatsAppSession, session_id)
        assert row is not None
        return row.webhook_secret


def _call(
    secret: str, event: str, data: dict[str, object], at: datetime
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"event": event, "session_id": "phone_1", "at": at.isoformat(), "data": data}
    ).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Wabroadcast-Session": "phone_1",
        "X-Wabroadcast-Signature": sign(secret, body),
    }


async def test_statuses_move_recipients_and_a_forged_call_changes_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await _baileys_session(client, tenant)
    broadcast_id = await _sent_broadcast(ctx, client, tenant)
    secret = await _secret(ctx, "phone_1")
    now = ctx.clock.now()
    for message_id, status in (("gw-0", "delivered"), ("gw-1", "read"), ("gw-2", "server_ack")):
        body, headers = _call(
            secret, "message.status", {"message_id": message_id, "status": status}, now
        )
        answer = await client.post(HOOK, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
    forged_body, headers = _call(
        "not-the-secret", "message.status", {"message_id": "gw-2", "status": "read"}, now
    )
    forged = await client.post(HOOK, content=forged_body, headers=headers)
    assert (forged.status_code, forged.json()["error_code"]) == (401, "WEBHOOK_UNAUTHORIZED")
    rows = {r["phone"]: r["status"] for r in await all_recipients(client, tenant, broadcast_id)}
    assert [rows[p] for p in NUMBERS] == ["delivered", "read", "sent"]
    await counts_match_rows(ctx, broadcast_id)


async def test_a_463_error_ack_fails_the_message_and_pauses_the_sessions_broadcasts(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await _baileys_session(client, tenant)
    broadcast_id = await _sent_broadcast(ctx, client, tenant)
    body, headers = _call(
        await _secret(ctx, "phone_1"),
        "message.status",
        {"message_id": "gw-1", "status": "error", "error_code": "463"},
        ctx.clock.now(),
    )
    assert (await client.post(HOOK, content=body, headers=headers)).status_code == 200
    state = await broadcast(client, tenant, broadcast_id)
    assert state["status"] == "paused"
    assert "463" in state["status_reason"]
    rows = {r["phone"]: r for r in await all_recipients(client, tenant, broadcast_id)}
    assert (rows[NUMBERS[1]]["status"], rows[NUMBERS[1]]["error_code"]) == (
        "failed",
        "BAILEYS_463",
    )
    await counts_match_rows(ctx, broadcast_id)


async def test_inbound_messages_are_kept_once(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    await _baileys_session(client, tenant)
    secret = await _secret(ctx, "phone_1")
    data = {"message_id": "in-1", "from": "972502345671", "text": "STOP", "timestamp": 1}
    for _ in range(2):  # the gateway retries: kept once
        body, headers = _call(secret, "message.inbound", data, ctx.clock.now())
        assert (await client.post(HOOK, content=body, headers=headers)).status_code == 200
    async with ctx.database.transaction() as db:
        rows = (await db.execute(select(InboundMessageRow))).scalars().all()
        count = (await db.execute(select(func.count()).select_from(InboundMessageRow))).scalar_one()
    assert count == 1
    (row,) = rows
    assert (row.session_id, row.from_phone, row.text, row.tenant_id) == (
        "phone_1",
        "+972502345671",
        "STOP",
        tenant.tenant_id,
    )


async def test_connecting_a_session_of_another_provider_is_refused(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await client.post(
        f"/api/whatsapp/sessions/{tenant.session_id}/connect", headers=tenant.headers
    )
    assert (response.status_code, response.json()["error_code"]) == (409, "NOT_LINKABLE")


async def test_connecting_when_the_gateway_is_down_is_a_502_with_a_sentence(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    await _baileys_session(client, tenant)
    response = await client.post("/api/whatsapp/sessions/phone_1/connect", headers=tenant.headers)
    assert (response.status_code, response.json()["error_code"]) == (502, "PROVIDER_SETUP_FAILED")
    assert "could not be reached" in response.json()["message"]
