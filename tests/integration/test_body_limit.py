"""Request bodies above WABROADCAST_MAX_BODY_BYTES are 413 PAYLOAD_TOO_LARGE, unread and unstored.

A body with a Content-Length above the cap is refused before a byte is read; a
chunked one is refused as soon as it passes the cap, and the rest is never pulled.
Either way nothing is stored, and the answer is distinct from TOO_MANY_RECIPIENTS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from starlette.types import Message

from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TEST_SECRET_KEY, TenantFixture
from wabroadcast.api.app import build_context, create_app
from wabroadcast.api.body_limit import BodyLimitMiddleware
from wabroadcast.api.routes.webhooks import MAX_BODY_BYTES as WEBHOOK_MAX_BYTES
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.db.models import IdempotencyRequest

URL = "/api/whatsapp/broadcasts"
LIMIT = 4096
DEFAULT_LIMIT = 16 * 1024 * 1024


@pytest.fixture
def settings(database_url: str) -> Settings:
    """This module's apps read at most LIMIT bytes of a body and take at most 5 recipients."""
    return Settings(
        database_url=database_url,
        secret_key=SecretStr(TEST_SECRET_KEY),
        max_body_bytes=LIMIT,
        max_recipients=5,
    )


def body_of_size(size: int, recipients: list[str] | None = None) -> bytes:
    """A valid broadcast body of exactly ``size`` bytes (padded with JSON whitespace)."""
    body = json.dumps({"message": "hello", "recipients": recipients or il_numbers(2)}).encode()
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


def assert_payload_too_large(response: httpx.Response, max_bytes: int = LIMIT) -> None:
    assert response.status_code == 413, response.text
    assert response.json() == {
        "success": False,
        "error_code": "PAYLOAD_TOO_LARGE",
        "message": f"The request body is larger than {max_bytes} bytes",
        "details": {"max_bytes": max_bytes},
    }


async def idempotency_rows(ctx: AppContext) -> int:
    async with ctx.database.transaction() as session:
        count = await session.execute(select(func.count()).select_from(IdempotencyRequest))
    return int(count.scalar_one())


class Pulled:
    """A chunked request body that counts how many of its chunks the server pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def chunked(body: bytes, size: int = 1000) -> Pulled:
    return Pulled([body[i : i + size] for i in range(0, len(body), size)])


async def test_a_declared_length_over_the_limit_is_413_before_any_body_is_read(
    ctx: AppContext, tenant: TenantFixture
) -> None:
    app = create_app(ctx)
    received: list[Message] = []
    sent: list[Message] = []

    async def receive() -> Message:  # pragma: no cover - must not be called
        received.append({"type": "http.request"})
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "server": ("test", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {tenant.api_key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(LIMIT + 1).encode()),
        ],
        "state": {},
    }
    await app(scope, receive, send)

    assert received == []
    start, body = sent[0], sent[1]
    assert start["type"] == "http.response.start"
    assert start["status"] == 413
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"])["error_code"] == "PAYLOAD_TOO_LARGE"
    assert await row_counts(ctx) == (0, 0)


async def test_a_declared_length_over_the_limit_is_413_through_http(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await client.post(
        URL,
        content=body_of_size(LIMIT + 1),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_payload_too_large(response)
    assert response.headers["connection"] == "close"
    assert await row_counts(ctx) == (0, 0)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, declared: bool
) -> None:
    body = body_of_size(LIMIT)
    content: bytes | Pulled = body if declared else chunked(body)
    response = await client.post(
        URL, content=content, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    assert await row_counts(ctx) == (1, 2)


async def test_a_chunked_body_one_byte_over_the_limit_is_413(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await client.post(
        URL,
        content=chunked(body_of_size(LIMIT + 1)),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_payload_too_large(response)
    assert await row_counts(ctx) == (0, 0)


async def test_a_chunked_body_over_the_limit_is_413_and_the_rest_is_never_read(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    # 200 KB of a valid body, sent without a Content-Length, with an Idempotency-Key.
    body = Pulled([b'{"message": "hi", "recipients": ["0502345678"', *[b" " * 1000] * 200, b"]}"])
    response = await client.post(
        URL,
        content=body,
        headers={
            **tenant.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": "order-1",
        },
    )
    assert_payload_too_large(response)
    # 46 + 4 x 1000 = 4046 bytes fit; the fifth 1000 pass 4096 and nothing after is pulled.
    assert body.pulled == 6
    assert await row_counts(ctx) == (0, 0)
    assert await idempotency_rows(ctx) == 0

    # The key was not claimed: the same key with a body that fits creates the broadcast.
    retry = await client.post(
        URL,
        json={"message": "hi", "recipients": ["0502345678"]},
        headers={**tenant.headers, "Idempotency-Key": "order-1"},
    )
    assert retry.status_code == 202, retry.text
    assert await row_counts(ctx) == (1, 1)


async def test_too_many_recipients_stays_distinct_from_a_body_too_large(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    too_many = await client.post(
        URL, json={"message": "hi", "recipients": il_numbers(6)}, headers=tenant.headers
    )
    assert too_many.status_code == 413
    assert too_many.json()["error_code"] == "TOO_MANY_RECIPIENTS"

    too_large = await client.post(
        URL,
        content=body_of_size(LIMIT + 1, il_numbers(3)),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_payload_too_large(too_large)
    assert await row_counts(ctx) == (0, 0)


async def test_with_the_default_limit_100001_recipients_are_too_many_not_too_large(
    database_url: str, clock: FrozenClock, tenant: TenantFixture, ctx: AppContext
) -> None:
    """The default cap leaves room for the largest broadcast: its recipient check still runs."""
    defaults = Settings(database_url=database_url, secret_key=SecretStr(TEST_SECRET_KEY))
    assert defaults.max_body_bytes == DEFAULT_LIMIT
    context = build_context(defaults, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(context), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body = json.dumps(
                {"message": "hi", "recipients": il_numbers(defaults.max_recipients + 1)}
            ).encode()
            assert len(body) < DEFAULT_LIMIT
            response = await http.post(
                URL, content=body, headers={**tenant.headers, "Content-Type": "application/json"}
            )
            assert response.status_code == 413
            assert response.json()["error_code"] == "TOO_MANY_RECIPIENTS"

            over = await http.post(
                URL,
                content=b" " * (DEFAULT_LIMIT + 1),
                headers={**tenant.headers, "Content-Type": "application/json"},
            )
            assert_payload_too_large(over, DEFAULT_LIMIT)
    finally:
        await context.providers.aclose()
        await context.database.dispose()
    assert await row_counts(ctx) == (0, 0)


async def test_webhooks_keep_their_own_cap_of_1_mib(
    database_url: str, clock: FrozenClock, ctx: AppContext
) -> None:
    defaults = Settings(database_url=database_url, secret_key=SecretStr(TEST_SECRET_KEY))
    assert defaults.max_body_bytes > WEBHOOK_MAX_BYTES
    context = build_context(defaults, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(context), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body = b"{" + b" " * WEBHOOK_MAX_BYTES + b"}"
            for content in (body, chunked(body, 64 * 1024)):
                response = await http.post(
                    "/api/whatsapp/webhooks/simulator",
                    content=content,
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code == 413, response.text
                assert response.json()["details"] == {"max_bytes": WEBHOOK_MAX_BYTES}
    finally:
        await context.providers.aclose()
        await context.database.dispose()


async def test_a_smaller_api_limit_also_applies_to_webhooks(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/whatsapp/webhooks/simulator",
        content=b"{" + b" " * LIMIT + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_payload_too_large(response)


async def test_paths_outside_the_api_are_not_limited_by_it() -> None:
    answered: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        answered.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = BodyLimitMiddleware(app, max_bytes=1024)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.post("/dashboard/broadcasts", content=b"x" * 5000)).status_code == 200
        assert (await http.post("/api/x", content=b"x" * 5000)).status_code == 413
        assert (await http.post("/api/x", content=chunked(b"x" * 5000))).status_code == 413
    assert answered == [5000]


def test_the_limit_is_a_setting_of_at_least_1_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WABROADCAST_MAX_BODY_BYTES", "2048")
    assert Settings().max_body_bytes == 2048
    with pytest.raises(ValidationError):
        Settings(max_body_bytes=1023)


async def test_a_csv_upload_over_the_limit_is_refused_and_one_under_it_accepted(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    # The multipart variant of the route sits under /api/ like the JSON one.
    big = b"phone\n" + b"0502345678\n" * (LIMIT // 11 + 1)
    refused = await client.post(
        URL,
        data={"message": "hi"},
        files={"file": ("c.csv", big, "text/csv")},
        headers=tenant.headers,
    )
    assert_payload_too_large(refused)
    assert await row_counts(ctx) == (0, 0)
    small = await client.post(
        URL,
        data={"message": "hi"},
        files={"file": ("c.csv", b"phone\n0502345678\n", "text/csv")},
        headers=tenant.headers,
    )
    assert small.status_code == 202, small.text
