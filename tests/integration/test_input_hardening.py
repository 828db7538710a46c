"""Input the API cannot store or echo is a 422 naming the field, before anything is stored."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.rows import row_counts
from tests.support.tenants import TenantFixture
from wabroadcast.context import AppContext
from wabroadcast.domain.recipients import RecipientInput, first_unstorable
from wabroadcast.pagination import encode_cursor

URL = "/api/whatsapp/broadcasts"
PHONE = "0502345678"


async def post_raw(
    client: httpx.AsyncClient, tenant: TenantFixture, body: object, **headers: str
) -> httpx.Response:
    """Post ``body`` as ASCII JSON, so a lone surrogate travels as the escape ``\\ud800``."""
    return await client.post(
        URL,
        content=json.dumps(body, ensure_ascii=True).encode("ascii"),
        headers={**tenant.headers, "Content-Type": "application/json", **headers},
    )


def assert_422_naming(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error_code"] == "VALIDATION_ERROR"
    assert error["message"].split(":")[0].startswith(field), error["message"]
    assert any(
        e["field"] == field or e["field"].startswith(f"{field}.")
        for e in error["details"]["errors"]
    )


UNSTORABLE_BODIES = [
    pytest.param({"message": "hi", "recipients": ["\ud800x"]}, "recipients.0", id="surrogate"),
    pytest.param(
        {"message": "hi", "recipients": [PHONE, "\udfff"]}, "recipients.1", id="low-surrogate"
    ),
    pytest.param(
        {"message": "hi", "recipients": [{"phone": "\ud800x"}]},
        "recipients.0.phone",
        id="surrogate-phone",
    ),
    pytest.param(
        # Pydantic itself refuses this one (max_length needs valid Unicode), naming the
        # union member: recipients.1.str and recipients.1.RecipientIn.name.
        {"message": "hi", "recipients": [PHONE, {"phone": "0523456789", "name": "Da\ud800na"}]},
        "recipients.1",
        id="surrogate-name",
    ),
    pytest.param({"message": "hi\ud800", "recipients": [PHONE]}, "message", id="surrogate-msg"),
    pytest.param({"message": "hi\u0000", "recipients": [PHONE]}, "message", id="nul-message"),
    pytest.param({"message": "hi", "recipients": ["050\u00002345678"]}, "recipients.0", id="nul"),
    pytest.param(
        {"message": "hi", "recipients": [{"phone": f"{PHONE}\u0000"}]},
        "recipients.0.phone",
        id="nul-phone",
    ),
    pytest.param(
        {"message": "hi", "recipients": [{"phone": PHONE, "name": "Dana\u0000"}]},
        "recipients.0.name",
        id="nul-name",
    ),
    pytest.param(
        {"message": "hi", "recipients": [PHONE], "session_id": "s\u0000"},
        "session_id",
        id="nul-session",
    ),
]


@pytest.mark.parametrize(("body", "field"), UNSTORABLE_BODIES)
async def test_unstorable_text_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, body: object, field: str
) -> None:
    assert_422_naming(await post_raw(client, tenant, body), field)
    assert await row_counts(ctx) == (0, 0)


@pytest.mark.parametrize(("body", "field"), UNSTORABLE_BODIES[:4] + UNSTORABLE_BODIES[6:9])
async def test_unstorable_text_with_an_idempotency_key_leaves_the_key_unclaimed(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, body: object, field: str
) -> None:
    response = await post_raw(client, tenant, body, **{"Idempotency-Key": "order-1"})
    assert_422_naming(response, field)
    assert await row_counts(ctx) == (0, 0)

    good = {"message": "hi", "recipients": [PHONE]}
    retry = await post_raw(client, tenant, good, **{"Idempotency-Key": "order-1"})
    assert retry.status_code == 202, retry.text
    assert retry.json()["idempotent"] is False
    assert await row_counts(ctx) == (1, 1)


async def test_paired_surrogates_and_emoji_are_ordinary_text(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    # ensure_ascii sends the emoji as the pair "\ud83d\ude00": one character once decoded.
    body = {
        "message": "Sale \U0001f600",
        "recipients": [{"phone": PHONE, "name": "Dana \U0001f600"}],
    }
    response = await post_raw(client, tenant, body)
    assert response.status_code == 202, response.text
    broadcast_id = response.json()["broadcast_id"]
    stored = await client.get(f"{URL}/{broadcast_id}", headers=tenant.headers)
    assert stored.json()["message"] == "Sale \U0001f600"
    recipients = await client.get(f"{URL}/{broadcast_id}/recipients", headers=tenant.headers)
    assert recipients.json()["items"][0]["name"] == "Dana \U0001f600"


@pytest.mark.parametrize(
    "message",
    ["\u200b\u200b", "\u2060\ufeff", "\u200e", " \u200b\t\n\u00a0\u2028\u3000", "\u200d\u200c"],
)
async def test_a_message_of_invisible_characters_is_422_like_an_empty_one(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, message: str
) -> None:
    response = await post_raw(client, tenant, {"message": message, "recipients": [PHONE]})
    assert_422_naming(response, "message")
    assert "visible text" in response.json()["message"]
    assert await row_counts(ctx) == (0, 0)


async def test_a_message_with_invisible_characters_around_text_is_accepted(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    body = {"message": "\u200bhi\u200e", "recipients": [PHONE]}
    assert (await post_raw(client, tenant, body)).status_code == 202


@pytest.mark.parametrize("last_id", [2**63, 2**64, 10**30, 0])
async def test_a_cursor_id_outside_bigint_is_422(
    client: httpx.AsyncClient, tenant: TenantFixture, last_id: int
) -> None:
    created = await post_raw(client, tenant, {"message": "hi", "recipients": [PHONE]})
    broadcast_id = created.json()["broadcast_id"]
    for url in (URL, f"{URL}/{broadcast_id}/recipients"):
        response = await client.get(
            url, params={"cursor": encode_cursor(last_id)}, headers=tenant.headers
        )
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error_code"] == "VALIDATION_ERROR"
        assert response.json()["details"] == {"field": "cursor"}


async def test_the_largest_bigint_cursor_is_accepted(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    created = await post_raw(client, tenant, {"message": "hi", "recipients": [PHONE]})
    broadcast_id = created.json()["broadcast_id"]
    cursor = encode_cursor(2**63 - 1)
    for url in (URL, f"{URL}/{broadcast_id}/recipients"):
        response = await client.get(url, params={"cursor": cursor}, headers=tenant.headers)
        assert response.status_code == 200, (url, response.text)


def test_first_unstorable_finds_the_first_bad_item_and_field() -> None:
    assert first_unstorable([PHONE] * 3) is None
    assert first_unstorable([PHONE, RecipientInput(PHONE, None, "Dana")]) is None
    assert first_unstorable([PHONE, "a\u0000", "\ud800"]) == (1, None)
    assert first_unstorable([RecipientInput(PHONE), RecipientInput(PHONE, 1, "\udc00")]) == (
        1,
        "name",
    )
    assert first_unstorable([PHONE, RecipientInput("\u0000")]) == (1, "phone")
