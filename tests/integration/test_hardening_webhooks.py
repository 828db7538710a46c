"""Signed simulator webhooks with times at the calendar's edges or NUL in their text.

Either is a 400 ``WEBHOOK_MALFORMED`` or is stored cleanly: never a 500, on
either database, and a refused body changes nothing.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.test_receipts import (
    HOOK,
    Sent,
    assert_counters_exact,
    queue_and_send,
    recipient,
    snapshot,
)
from tests.support.tenants import TenantFixture
from wabroadcast.context import AppContext
from wabroadcast.providers.base import WebhookBodyInvalid
from wabroadcast.providers.simulator.webhook import (
    SESSION_HEADER,
    SIGNATURE_HEADER,
    parse_simulator_webhook,
    sign_simulator_webhook,
)


async def post_raw(
    client: httpx.AsyncClient, sent: Sent, receipts: list[dict[str, object]]
) -> httpx.Response:
    body = json.dumps({"receipts": receipts}).encode("utf-8")
    return await client.post(
        HOOK,
        content=body,
        headers={
            SESSION_HEADER: sent.session_id,
            SIGNATURE_HEADER: sign_simulator_webhook(sent.secret, body),
            "Content-Type": "application/json",
        },
    )


OUT_OF_RANGE = [
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC: overflows
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC: overflows
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1999-12-31T23:59:59Z",
    "2200-01-01T00:00:01Z",
    "2000-01-01T09:59:59+10:00",  # 1999-12-31T23:59:59Z
]


@pytest.mark.parametrize("at", OUT_OF_RANGE)
async def test_a_time_out_of_range_is_malformed(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, at: str
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    before = await snapshot(ctx)
    response = await post_raw(
        client, sent, [{"provider_message_id": sent.pmids[0], "status": "delivered", "at": at}]
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "WEBHOOK_MALFORMED"
    assert "out of range" in response.json()["message"]
    assert await snapshot(ctx) == before


@pytest.mark.parametrize("at", ["2000-01-01T00:00:00Z", "2200-01-01T00:00:00Z"])
async def test_the_range_is_inclusive(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture, at: str
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    response = await post_raw(
        client, sent, [{"provider_message_id": sent.pmids[0], "status": "delivered", "at": at}]
    )
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 1


async def test_nul_is_stripped_from_error_text(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    response = await post_raw(
        client,
        sent,
        [
            {
                "provider_message_id": sent.pmids[0],
                "status": "failed",
                "at": "2026-11-28T12:00:02Z",
                "error_code": "BAD\x00CODE",
                "error_message": "nul\x00in\x00the\x00middle\x00",
            },
            {
                "provider_message_id": sent.pmids[1] + "\x00",
                "status": "delivered",
                "at": "2026-11-28T12:00:03Z",
            },
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 2
    failed = await recipient(ctx, sent.recipient_ids[0])
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "BADCODE",
        "nulinthemiddle",
    )
    assert (await recipient(ctx, sent.recipient_ids[1])).status == "delivered"
    await assert_counters_exact(ctx, sent.broadcast_id)


async def test_an_error_code_of_nul_only_is_malformed(
    client: httpx.AsyncClient, ctx: AppContext, tenant: TenantFixture
) -> None:
    sent = await queue_and_send(client, ctx, tenant)
    before = await snapshot(ctx)
    response = await post_raw(
        client,
        sent,
        [
            {
                "provider_message_id": sent.pmids[0],
                "status": "failed",
                "at": "2026-11-28T12:00:02Z",
                "error_code": "\x00\x00",
            }
        ],
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "WEBHOOK_MALFORMED"
    assert await snapshot(ctx) == before


@pytest.mark.parametrize("at", OUT_OF_RANGE)
def test_the_parser_refuses_out_of_range_times(at: str) -> None:
    body = json.dumps(
        {"receipts": [{"provider_message_id": "m1", "status": "read", "at": at}]}
    ).encode()
    headers = {SIGNATURE_HEADER: sign_simulator_webhook("s3cret", body)}
    with pytest.raises(WebhookBodyInvalid, match="out of range"):
        parse_simulator_webhook("s3cret", headers, body)
