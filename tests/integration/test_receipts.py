"""Receipts over the webhook and from the simulator's pump: real rows, exact counters.

Recipients are queued through the API and then moved to ``sent`` with a
provider message id by direct UPDATEs (what the dispatcher does for real),
so every scenario starts from rows the product itself created.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from structlog.testing import capture_logs

from tests.support.rows import il_numbers
from tests.support.tenants import START, TenantFixture, make_tenant
from wabroadcast.broadcasts.repository.counts import COUNT_COLUMNS, shift_counts
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import (
    WhatsAppBroadcast,
    WhatsAppBroadcastRecipient,
    WhatsAppSession,
)
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.providers.base import Receipt, ReceiptStatus
from wabroadcast.providers.simulator.models import SimulatorSend
from wabroadcast.providers.simulator.receipts import deliver_due_receipts
from wabroadcast.providers.simulator.webhook import (
    SESSION_HEADER,
    SIGNATURE_HEADER,
    receipts_body,
    sign_simulator_webhook,
)

R = WhatsAppBroadcastRecipient
HOOK = "/api/whatsapp/webhooks/simulator"
BROADCASTS = "/api/whatsapp/broadcasts"


@dataclass(frozen=True)
class Sent:
    """A broadcast whose first recipients are ``sent`` with provider ids ``pmids``."""

    broadcast_id: int
    session_id: str
    secret: str
    recipient_ids: list[int]
    pmids: list[str]


async def webhook_secret(ctx: AppContext, session_id: str) -> str:
    async with ctx.database.transaction() as session:
        row = await session.get(WhatsAppSession, session_id)
        assert row is not None
        return row.webhook_secret


async def queue_and_send(
    client: httpx.AsyncClient,
    ctx: AppContext,
    tenant: TenantFixture,
    *,
    total: int = 3,
    sent: int = 2,
    message: str = "hello",
) -> Sent:
    response = await client.post(
        BROADCASTS,
        json={"message": message, "recipients": il_numbers(total)},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    broadcast_id: int = response.json()["broadcast_id"]
    async with ctx.database.transaction() as session:
        ids = list(
            (
                await session.execute(
                    select(R.id).where(R.broadcast_id == broadcast_id).order_by(R.id)
                )
            ).scalars()
        )
        for recipient_id in ids[:sent]:
            await session.execute(
                update(R)
                .where(R.id == recipient_id)
                .values(
                    status=RecipientStatus.SENT.value,
                    provider_message_id=f"wamid.{recipient_id}",
                    attempts=1,
                    sent_at=START,
                )
            )
        await shift_counts(
            session, {broadcast_id: {(RecipientStatus.QUEUED, RecipientStatus.SENT): sent}}, START
        )
    return Sent(
        broadcast_id,
        tenant.session_id,
        await webhook_secret(ctx, tenant.session_id),
        ids,
        [f"wamid.{i}" for i in ids[:sent]],
    )


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def receipt(pmid: str, status: str, seconds: float, **error: str) -> Receipt:
    return Receipt(
        pmid,
        ReceiptStatus(status),
        at(seconds),
        error.get("code"),
        error.get("message"),
    )


async def post_receipts(
    client: httpx.AsyncClient, sent: Sent, receipts: list[Receipt]
) -> dict[str, Any]:
    body = receipts_body(receipts)
    response = await client.post(
        HOOK,
        content=body,
        headers={
            SESSION_HEADER: sent.session_id,
            SIGNATURE_HEADER: sign_simulator_webhook(sent.secret, body),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["success"] is True
    return result


async def recipient(ctx: AppContext, recipient_id: int) -> R:
    async with ctx.database.transaction() as session:
        row = await session.get(R, recipient_id)
        assert row is not None
        return row


async def assert_counters_exact(ctx: AppContext, broadcast_id: int) -> dict[str, int]:
    """The broadcast's counters equal a fresh GROUP BY of its recipients' statuses."""
    async with ctx.database.transaction() as session:
        broadcast = await session.get(WhatsAppBroadcast, broadcast_id)
        assert broadcast is not None
        grouped = (
            await session.execute(
                select(R.status, func.count())
                .where(R.broadcast_id == broadcast_id)
                .group_by(R.status)
            )
        ).all()
    actual = {COUNT_COLUMNS[RecipientStatus(status)]: int(n) for status, n in grouped}
    stored = {column: getattr(broadcast, column) for column in COUNT_COLUMNS.values()}
    assert stored == {column: actual.get(column, 0) for column in COUNT_COLUMNS.values()}
    return stored


async def snapshot(ctx: AppContext) -> list[list[tuple[Any, ...]]]:
    """Every row of every table a webhook could touch."""
    tables = [R.__table__, WhatsAppBroadcast.__table__, SimulatorSend.__table__]
    async with ctx.database.transaction() as session:
        return [
            [tuple(row) for row in (await session.execute(select(table).order_by(text("1")))).all()]
            for table in tables
        ]


# --- applying receipts ------------------------------------------------------------------


async def test_delivered_then_read(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    clock.advance(10)
    result = await post_receipts(client, sent, [receipt(sent.pmids[0], "delivered", 2)])
    assert result == {"success": True, "applied": 1, "ignored": 0, "unknown": 0}
    row = await recipient(ctx, sent.recipient_ids[0])
    assert (row.status, row.delivered_at, row.read_at) == ("delivered", at(2), None)
    assert row.updated_at == clock.now()
    assert (await assert_counters_exact(ctx, sent.broadcast_id))["delivered_count"] == 1

    await post_receipts(client, sent, [receipt(sent.pmids[0], "read", 5)])
    row = await recipient(ctx, sent.recipient_ids[0])
    assert (row.status, row.delivered_at, row.read_at) == ("read", at(2), at(5))
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["sent_count"], counts["delivered_count"], counts["read_count"]) == (1, 0, 1)
    body = (await client.get(f"{BROADCASTS}/{sent.broadcast_id}", headers=tenant.headers)).json()
    assert (body["sent_count"], body["delivered_count"], body["read_count"]) == (2, 1, 1)
    items = (
        await client.get(
            f"{BROADCASTS}/{sent.broadcast_id}/recipients",
            params={"status": "read"},
            headers=tenant.headers,
        )
    ).json()["items"]
    assert [(i["status"], i["delivered_at"], i["read_at"]) for i in items] == [
        ("read", "2026-11-28T12:00:02Z", "2026-11-28T12:00:05Z")
    ]


async def test_read_without_delivered_sets_delivered_at_too(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    await post_receipts(client, sent, [receipt(sent.pmids[1], "read", 7)])
    row = await recipient(ctx, sent.recipient_ids[1])
    assert (row.status, row.delivered_at, row.read_at) == ("read", at(7), at(7))
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["sent_count"], counts["read_count"]) == (1, 1)


async def test_out_of_order_receipts_end_read_with_both_timestamps(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    first, second = sent.pmids
    # Across two calls: read arrives first, delivered later.
    await post_receipts(client, sent, [receipt(first, "read", 5)])
    result = await post_receipts(client, sent, [receipt(first, "delivered", 2)])
    assert result["applied"] == 1  # delivered_at moves to the earlier, true time
    # Within one call, listed in the wrong order.
    result = await post_receipts(
        client, sent, [receipt(second, "read", 6), receipt(second, "delivered", 3)]
    )
    assert (result["applied"], result["ignored"]) == (2, 0)
    for recipient_id, delivered_at, read_at in [
        (sent.recipient_ids[0], at(2), at(5)),
        (sent.recipient_ids[1], at(3), at(6)),
    ]:
        row = await recipient(ctx, recipient_id)
        assert (row.status, row.delivered_at, row.read_at) == ("read", delivered_at, read_at)
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["sent_count"], counts["delivered_count"], counts["read_count"]) == (0, 0, 2)


async def test_a_late_delivered_after_read_changes_nothing(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    await post_receipts(
        client, sent, [receipt(sent.pmids[0], "delivered", 2), receipt(sent.pmids[0], "read", 5)]
    )
    before = await snapshot(ctx)
    result = await post_receipts(client, sent, [receipt(sent.pmids[0], "delivered", 9)])
    assert (result["applied"], result["ignored"]) == (0, 1)
    assert await snapshot(ctx) == before


async def test_repeated_receipts_are_no_ops(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    batch = [
        receipt(sent.pmids[0], "delivered", 2),
        receipt(sent.pmids[0], "read", 4),
        receipt(sent.pmids[1], "failed", 3, code="131026", message="undeliverable"),
    ]
    assert (await post_receipts(client, sent, batch))["applied"] == 3
    before = await snapshot(ctx)
    clock.advance(60)
    assert await post_receipts(client, sent, batch) == {
        "success": True,
        "applied": 0,
        "ignored": 3,
        "unknown": 0,
    }
    duplicated = await post_receipts(client, sent, batch + batch)
    assert (duplicated["applied"], duplicated["ignored"]) == (0, 6)
    assert await snapshot(ctx) == before  # not even updated_at moved
    await assert_counters_exact(ctx, sent.broadcast_id)


async def test_late_failure_after_sent(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    await post_receipts(
        client,
        sent,
        [receipt(sent.pmids[0], "failed", 4, code="131026", message="Message undeliverable")],
    )
    row = await recipient(ctx, sent.recipient_ids[0])
    assert (row.status, row.failed_at, row.error_code, row.error_message) == (
        "failed",
        at(4),
        "131026",
        "Message undeliverable",
    )
    assert row.sent_at == START  # what we knew about the send stays
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["sent_count"], counts["failed_count"]) == (1, 1)


async def test_a_failure_after_delivery_is_ignored(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    await post_receipts(client, sent, [receipt(sent.pmids[0], "delivered", 2)])
    result = await post_receipts(client, sent, [receipt(sent.pmids[0], "failed", 3, code="X")])
    assert (result["applied"], result["ignored"]) == (0, 1)
    row = await recipient(ctx, sent.recipient_ids[0])
    assert (row.status, row.error_code, row.failed_at) == ("delivered", None, None)
    await assert_counters_exact(ctx, sent.broadcast_id)


async def test_unknown_outcome_failure_turns_delivered_when_a_receipt_proves_it(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant, sent=0)
    recipient_id = sent.recipient_ids[2]
    async with ctx.database.transaction() as session:
        await session.execute(
            update(R)
            .where(R.id == recipient_id)
            .values(
                status=RecipientStatus.FAILED.value,
                provider_message_id="wamid.lost",
                error_code="UNKNOWN_OUTCOME",
                error_message="the send's outcome is unknown",
                failed_at=at(1),
            )
        )
        await shift_counts(
            session,
            {sent.broadcast_id: {(RecipientStatus.QUEUED, RecipientStatus.FAILED): 1}},
            START,
        )
    await assert_counters_exact(ctx, sent.broadcast_id)
    result = await post_receipts(client, sent, [receipt("wamid.lost", "delivered", 8)])
    assert result["applied"] == 1
    row = await recipient(ctx, recipient_id)
    assert (row.status, row.delivered_at, row.error_code, row.failed_at) == (
        "delivered",
        at(8),
        "UNKNOWN_OUTCOME",
        at(1),
    )
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["failed_count"], counts["delivered_count"]) == (0, 1)


async def test_unknown_ids_are_accepted_counted_and_logged(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    before = await snapshot(ctx)
    with capture_logs() as logs:
        result = await post_receipts(
            client, sent, [receipt("wamid.nobody", "delivered", 2), receipt("wamid.x", "read", 3)]
        )
    assert result == {"success": True, "applied": 0, "ignored": 0, "unknown": 2}
    assert await snapshot(ctx) == before
    unknown = [e for e in logs if e["event"] == "[WA_SEND] receipts for unknown messages accepted"]
    assert len(unknown) == 1
    assert unknown[0]["unknown"] == 2
    assert unknown[0]["provider_message_ids"] == ["wamid.nobody", "wamid.x"]


async def test_receipts_only_reach_the_signing_sessions_recipients(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    """Another tenant, correctly signing with its own secret, cannot touch our messages."""
    ours = await queue_and_send(client, ctx, tenant)
    other = await make_tenant(ctx, name="Other")
    theirs = Sent(0, other.session_id, await webhook_secret(ctx, other.session_id), [], [])
    before = await snapshot(ctx)
    result = await post_receipts(client, theirs, [receipt(ours.pmids[0], "read", 2)])
    assert result["unknown"] == 1
    assert await snapshot(ctx) == before


async def test_a_mixed_batch_keeps_every_counter_exact(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant, total=8, sent=6)
    a, b, c, d, e, _ = sent.pmids
    result = await post_receipts(
        client,
        sent,
        [
            receipt(a, "delivered", 1),
            receipt(b, "read", 2),
            receipt(c, "delivered", 3),
            receipt(c, "read", 4),
            receipt(d, "failed", 2, code="131049"),
            receipt(d, "delivered", 5),
            receipt(e, "failed", 6),
            receipt(a, "delivered", 1),
            receipt("wamid.unknown", "read", 1),
        ],
    )
    assert result == {"success": True, "applied": 7, "ignored": 1, "unknown": 1}
    statuses = [(await recipient(ctx, i)).status for i in sent.recipient_ids]
    assert statuses == [
        "delivered",
        "read",
        "read",
        "delivered",
        "failed",
        "sent",
        "queued",
        "queued",
    ]
    failed = await recipient(ctx, sent.recipient_ids[4])
    assert (failed.error_code, failed.error_message) == (
        "DELIVERY_FAILED",
        "The provider reported that the message was not delivered",
    )
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert counts == {
        "queued_count": 2,
        "sending_count": 0,
        "sent_count": 1,
        "delivered_count": 2,
        "read_count": 2,
        "failed_count": 1,
        "cancelled_count": 0,
        "skipped_count": 0,
    }


async def test_applied_receipts_are_logged_with_a_masked_phone(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    phone = (await recipient(ctx, sent.recipient_ids[0])).phone
    with capture_logs() as logs:
        await post_receipts(client, sent, [receipt(sent.pmids[0], "read", 3)])
    applied = [e for e in logs if e["event"] == "[WA_SEND] receipt applied"]
    assert len(applied) == 1
    line = applied[0]
    assert line["broadcast_id"] == sent.broadcast_id
    assert line["status"] == "read"
    assert line["phone"] == "+" + "*" * (len(phone) - 5) + phone[-4:]
    assert all(phone not in str(e) for e in logs)


async def test_concurrent_webhooks_for_the_same_messages_keep_counters_exact(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant, total=6, sent=6)
    batches = [
        [receipt(pmid, status, seconds) for pmid in sent.pmids[offset:] + sent.pmids[:offset]]
        for offset, (status, seconds) in enumerate(
            [("delivered", 2), ("read", 5), ("delivered", 1), ("read", 4), ("delivered", 3)] * 2
        )
    ]
    results = await asyncio.gather(*(post_receipts(client, sent, b) for b in batches))
    assert sum(r["applied"] + r["ignored"] for r in results) == 60
    for recipient_id in sent.recipient_ids:
        row = await recipient(ctx, recipient_id)
        assert row.status == "read"
        assert row.delivered_at is not None
        assert row.read_at is not None
        assert row.delivered_at <= row.read_at
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert counts["read_count"] == 6


# --- refusing forged and malformed calls ------------------------------------------------

Headers = dict[str, str]
Call = Callable[[Sent, str, str], tuple[bytes, Headers]]


def _good_body(sent: Sent) -> bytes:
    return receipts_body([receipt(sent.pmids[0], "read", 3)])


def _signed(sent: Sent, body: bytes) -> Headers:
    return {
        SESSION_HEADER: sent.session_id,
        SIGNATURE_HEADER: sign_simulator_webhook(sent.secret, body),
    }


def forged(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = _good_body(sent)
    return body, {
        SESSION_HEADER: sent.session_id,
        SIGNATURE_HEADER: sign_simulator_webhook("guess", body),
    }


def no_signature(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    return _good_body(sent), {SESSION_HEADER: sent.session_id}


def no_session(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = _good_body(sent)
    return body, {SIGNATURE_HEADER: sign_simulator_webhook(sent.secret, body)}


def unknown_session(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = _good_body(sent)
    return body, {**_signed(sent, body), SESSION_HEADER: "business_999"}


def overlong_session(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = _good_body(sent)
    return body, {**_signed(sent, body), SESSION_HEADER: "b" * 5000}


def wrong_session(sent: Sent, other_session: str, _key: str) -> tuple[bytes, Headers]:
    """Our secret, but another tenant's session named."""
    body = _good_body(sent)
    return body, {**_signed(sent, body), SESSION_HEADER: other_session}


def api_key_instead(sent: Sent, _other: str, api_key: str) -> tuple[bytes, Headers]:
    return _good_body(sent), {SESSION_HEADER: sent.session_id, "Authorization": f"Bearer {api_key}"}


def tampered(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    headers = _signed(sent, _good_body(sent))
    return receipts_body([receipt(sent.pmids[1], "read", 3)]), headers


def bad_json(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = b'{"receipts": [{"provider_message_id": '
    return body, _signed(sent, body)


def wrong_shape(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = json.dumps(
        {
            "receipts": [
                {
                    "provider_message_id": sent.pmids[0],
                    "status": "read",
                    "at": "2026-11-28T12:00:03Z",
                    "by": "x",
                }
            ]
        }
    ).encode()
    return body, _signed(sent, body)


def naive_time(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = json.dumps(
        {
            "receipts": [
                {
                    "provider_message_id": sent.pmids[0],
                    "status": "read",
                    "at": "2026-11-28T12:00:03",
                }
            ]
        }
    ).encode()
    return body, _signed(sent, body)


def backwards_status(sent: Sent, _other: str, _key: str) -> tuple[bytes, Headers]:
    body = json.dumps(
        {
            "receipts": [
                {
                    "provider_message_id": sent.pmids[0],
                    "status": "queued",
                    "at": "2026-11-28T12:00:03Z",
                }
            ]
        }
    ).encode()
    return body, _signed(sent, body)


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (forged, 401, "WEBHOOK_UNAUTHORIZED"),
        (no_signature, 401, "WEBHOOK_UNAUTHORIZED"),
        (no_session, 401, "WEBHOOK_UNAUTHORIZED"),
        (unknown_session, 401, "WEBHOOK_UNAUTHORIZED"),
        (overlong_session, 401, "WEBHOOK_UNAUTHORIZED"),
        (wrong_session, 401, "WEBHOOK_UNAUTHORIZED"),
        (api_key_instead, 401, "WEBHOOK_UNAUTHORIZED"),
        (tampered, 401, "WEBHOOK_UNAUTHORIZED"),
        (bad_json, 400, "WEBHOOK_MALFORMED"),
        (wrong_shape, 400, "WEBHOOK_MALFORMED"),
        (naive_time, 400, "WEBHOOK_MALFORMED"),
        (backwards_status, 400, "WEBHOOK_MALFORMED"),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
async def test_forged_or_malformed_calls_are_refused_and_touch_nothing(
    client: httpx.AsyncClient,
    ctx: AppContext,
    tenant: TenantFixture,
    call: Call,
    status: int,
    code: str,
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    other = await make_tenant(ctx, name="Other")
    body, headers = call(sent, other.session_id, tenant.api_key)
    before = await snapshot(ctx)
    response = await client.post(HOOK, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert (error["success"], error["error_code"]) == (False, code)
    if status == 401:
        # The same answer whatever was wrong: nothing to learn about which sessions exist.
        assert error["message"] == "Webhook not accepted: unknown session or bad signature"
        assert error["details"] == {}
    assert await snapshot(ctx) == before


async def test_a_session_of_another_provider_is_refused(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    async with ctx.database.transaction() as session:
        session.add(
            WhatsAppSession(
                id="gateway_1",
                tenant_id=tenant.tenant_id,
                provider="baileys",
                config={},
                is_default=False,
                max_concurrency=1,
                webhook_secret="gateway-secret",
                created_at=ctx.clock.now(),
            )
        )
    body = receipts_body([receipt("wamid.1", "read", 1)])
    response = await client.post(
        HOOK,
        content=body,
        headers={
            SESSION_HEADER: "gateway_1",
            SIGNATURE_HEADER: sign_simulator_webhook("gateway-secret", body),
        },
    )
    assert (response.status_code, response.json()["error_code"]) == (401, "WEBHOOK_UNAUTHORIZED")


async def test_unknown_provider_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/whatsapp/webhooks/meta", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error_code"] == "PROVIDER_NOT_FOUND"
    response = await client.post("/api/whatsapp/webhooks/" + "x" * 33, content=b"{}")
    assert (response.status_code, response.json()["error_code"]) == (422, "VALIDATION_ERROR")
    # The simulator has no subscription handshake (Meta's GET): nothing answers it.
    response = await client.get(HOOK)
    assert (response.status_code, response.json()["error_code"]) == (404, "PROVIDER_NOT_FOUND")


async def test_bodies_above_1_mib_are_413_and_touch_nothing(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    before = await snapshot(ctx)
    big = b" " * (1024 * 1024) + _good_body(sent)
    declared = await client.post(HOOK, content=big, headers=_signed(sent, big))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await client.post(HOOK, content=chunks(), headers=_signed(sent, big))
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    assert "content-length" not in streamed.request.headers
    assert await snapshot(ctx) == before


async def test_the_route_is_documented_without_api_key_auth(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/whatsapp/webhooks/{provider}"]["post"]
    assert "security" not in operation
    assert {"200", "400", "401", "404", "413", "422"} <= set(operation["responses"])
    for status in ("400", "401", "404", "413", "422"):
        content = operation["responses"][status]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/ErrorEnvelope")
    names = {p["name"] for p in operation["parameters"]}
    assert {"provider", SESSION_HEADER, SIGNATURE_HEADER, "X-Hub-Signature-256"} <= names
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "$defs" not in json.dumps(body_schema)
    (simulator,) = [s for s in body_schema["anyOf"] if "receipts" in s.get("properties", {})]
    assert simulator["properties"]["receipts"]["maxItems"] == 1000


# --- the simulator's receipt pump -------------------------------------------------------


async def add_simulator_sends(
    ctx: AppContext,
    session_id: str,
    pmids: list[str],
    *,
    deliver_at: datetime | None,
    receipt_sent_at: datetime | None = None,
) -> None:
    async with ctx.database.transaction() as session:
        for pmid in pmids:
            session.add(
                SimulatorSend(
                    session_id=session_id,
                    phone="+972500000000",
                    client_message_id=f"client-{pmid}",
                    provider_message_id=pmid,
                    repeat=False,
                    outcome="sent" if deliver_at is not None else "failed",
                    started_at=START,
                    finished_at=START,
                    deliver_at=deliver_at,
                    receipt_sent_at=receipt_sent_at,
                )
            )


async def receipts_pending(ctx: AppContext) -> int:
    async with ctx.database.transaction() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(SimulatorSend)
                    .where(
                        SimulatorSend.receipt_sent_at.is_(None),
                        SimulatorSend.deliver_at.is_not(None),
                    )
                )
            ).scalar_one()
        )


async def test_a_receipt_that_overtakes_its_send_record_is_applied_once_it_is_recorded(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    sent = await queue_and_send(client, ctx, tenant, total=2, sent=1)
    await add_simulator_sends(ctx, sent.session_id, ["wamid.later"], deliver_at=at(1))
    clock.advance(1)
    assert await deliver_due_receipts(ctx) == 0
    async with ctx.database.transaction() as session:
        await session.execute(
            update(R).where(R.id == sent.recipient_ids[0]).values(provider_message_id="wamid.later")
        )
    clock.advance(2)
    assert await deliver_due_receipts(ctx) == 1
    assert (await recipient(ctx, sent.recipient_ids[0])).status == "delivered"


async def test_the_pump_delivers_due_receipts_once_and_not_early(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    sent = await queue_and_send(client, ctx, tenant, total=4, sent=3)
    await add_simulator_sends(ctx, sent.session_id, sent.pmids[:2], deliver_at=at(2))
    await add_simulator_sends(ctx, sent.session_id, ["wamid.gone"], deliver_at=at(1))
    await add_simulator_sends(ctx, sent.session_id, ["wamid.failed"], deliver_at=None)
    await add_simulator_sends(
        ctx, sent.session_id, [sent.pmids[2]], deliver_at=at(1), receipt_sent_at=at(1)
    )

    assert await deliver_due_receipts(ctx) == 0
    clock.advance(1)
    # The unknown id is held back (its send may not be recorded yet), not lost.
    assert await deliver_due_receipts(ctx) == 0
    assert {(await recipient(ctx, i)).status for i in sent.recipient_ids[:3]} == {"sent"}
    clock.advance(0.999)
    assert await deliver_due_receipts(ctx) == 0
    clock.advance(0.001)
    assert await deliver_due_receipts(ctx) == 2
    assert await deliver_due_receipts(ctx) == 0
    clock.advance(3600)
    # Past its patience the unknown receipt is delivered: accepted, logged, no change.
    assert await deliver_due_receipts(ctx) == 1
    assert await deliver_due_receipts(ctx) == 0

    for recipient_id in sent.recipient_ids[:2]:
        row = await recipient(ctx, recipient_id)
        assert (row.status, row.delivered_at, row.updated_at) == ("delivered", at(2), at(2))
    assert (await recipient(ctx, sent.recipient_ids[2])).status == "sent"
    async with ctx.database.transaction() as session:
        stamps = dict(
            (
                await session.execute(
                    select(SimulatorSend.provider_message_id, SimulatorSend.receipt_sent_at)
                )
            ).all()
        )
    assert stamps == {
        sent.pmids[0]: at(2),
        sent.pmids[1]: at(2),
        "wamid.gone": at(3602),
        "wamid.failed": None,
        sent.pmids[2]: at(1),
    }
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["sent_count"], counts["delivered_count"]) == (1, 2)


async def test_the_pump_goes_through_the_same_rules_as_webhooks(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    """A receipt already overtaken by a webhook's read changes nothing."""
    sent = await queue_and_send(client, ctx, tenant)
    await post_receipts(client, sent, [receipt(sent.pmids[0], "read", 1)])
    await add_simulator_sends(ctx, sent.session_id, sent.pmids, deliver_at=at(2))
    clock.advance(2)
    assert await deliver_due_receipts(ctx) == 2
    first, second = [await recipient(ctx, i) for i in sent.recipient_ids[:2]]
    assert (first.status, first.delivered_at, first.read_at) == ("read", at(1), at(1))
    assert (second.status, second.delivered_at) == ("delivered", at(2))
    await assert_counters_exact(ctx, sent.broadcast_id)


async def test_the_pump_works_in_batches_across_sessions(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    ours = await queue_and_send(client, ctx, tenant, total=3, sent=3)
    other = await make_tenant(ctx, name="Other")
    theirs = await queue_and_send(client, ctx, other, total=2, sent=2, message="theirs")
    await add_simulator_sends(ctx, ours.session_id, ours.pmids, deliver_at=at(1))
    await add_simulator_sends(ctx, theirs.session_id, theirs.pmids, deliver_at=at(1))
    clock.advance(1)
    assert [await deliver_due_receipts(ctx, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    for sent in (ours, theirs):
        assert {(await recipient(ctx, i)).status for i in sent.recipient_ids} == {"delivered"}
        await assert_counters_exact(ctx, sent.broadcast_id)


async def test_concurrent_pumps_deliver_each_receipt_once(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    sent = await queue_and_send(client, ctx, tenant, total=30, sent=30)
    await add_simulator_sends(ctx, sent.session_id, sent.pmids, deliver_at=at(1))
    clock.advance(1)

    async def drain() -> int:
        total = 0
        while delivered := await deliver_due_receipts(ctx, limit=4):
            total += delivered
        return total

    results = await asyncio.gather(drain(), drain(), drain())
    assert sum(results) == 30
    assert await receipts_pending(ctx) == 0
    counts = await assert_counters_exact(ctx, sent.broadcast_id)
    assert (counts["sent_count"], counts["delivered_count"]) == (0, 30)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_pump_skips_receipts_another_worker_holds(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, clock: FrozenClock
) -> None:
    """PostgreSQL: rows locked by a running pump are skipped, not waited for or repeated."""
    sent = await queue_and_send(client, ctx, tenant, total=5, sent=5)
    await add_simulator_sends(ctx, sent.session_id, sent.pmids, deliver_at=at(1))
    clock.advance(1)
    held = sent.pmids[:2]
    async with ctx.database.transaction() as other_worker:
        await other_worker.execute(
            select(SimulatorSend.id)
            .where(SimulatorSend.provider_message_id.in_(held))
            .with_for_update()
        )
        assert await asyncio.wait_for(deliver_due_receipts(ctx), timeout=10) == 3
        assert await asyncio.wait_for(deliver_due_receipts(ctx), timeout=10) == 0
    assert await deliver_due_receipts(ctx) == 2
    assert {(await recipient(ctx, i)).status for i in sent.recipient_ids} == {"delivered"}
    await assert_counters_exact(ctx, sent.broadcast_id)
