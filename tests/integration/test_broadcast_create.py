"""POST /api/whatsapp/broadcasts: proof, phones, errors, connection check."""

from __future__ import annotations

import time

import httpx
import pytest
from structlog.testing import capture_logs

from tests.support.providers import simulator_of
from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TenantFixture, make_tenant
from wabroadcast.context import AppContext

URL = "/api/whatsapp/broadcasts"


async def post(
    client: httpx.AsyncClient, tenant: TenantFixture, body: object, **headers: str
) -> httpx.Response:
    return await client.post(URL, json=body, headers={**tenant.headers, **headers})


async def test_accepts_and_returns_proof_of_stored_rows(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    body = {
        "message": "Sale starts tomorrow",
        "recipients": [
            {"phone": "050-234-5678", "lead_id": 1, "name": "Dana"},
            "+972 52 345 6789",
            "00972502345678",  # same number as the first, another spelling
            "123",
            "hello",
        ],
    }
    response = await post(client, tenant, body)
    assert response.status_code == 202, response.text
    proof = response.json()
    assert proof["success"] is True
    assert proof["status"] == "queued"
    assert proof["job_id"] == f"broadcast_{proof['broadcast_id']}"
    assert proof["total_recipients"] == 2
    assert proof["queued_count"] == 2
    assert proof["sent_count"] == 0
    assert proof["duplicates_removed"] == 1
    assert proof["invalid_recipients_count"] == 2
    assert proof["invalid_recipients"] == [
        {"input": "123", "reason": "too_short"},
        {"input": "hello", "reason": "invalid_format"},
    ]
    assert proof["items"] == [
        {
            "phone": "+972502345678",
            "lead_id": 1,
            "status": "queued",
            "message_preview": "Sale starts tomorrow",
        },
        {
            "phone": "+972523456789",
            "lead_id": None,
            "status": "queued",
            "message_preview": "Sale starts tomorrow",
        },
    ]
    assert proof["idempotent"] is False
    assert proof["connection_check"] == "connected"
    assert await row_counts(ctx) == (1, 2)

    stored = (await client.get(f"{URL}/{proof['broadcast_id']}", headers=tenant.headers)).json()
    assert stored["status"] == "queued"
    assert stored["queued_at"] is not None
    assert stored["total_recipients"] == 2
    recipients = (
        await client.get(f"{URL}/{proof['broadcast_id']}/recipients", headers=tenant.headers)
    ).json()["items"]
    assert [(r["phone"], r["lead_id"], r["name"], r["status"]) for r in recipients] == [
        ("+972502345678", 1, "Dana", "queued"),
        ("+972523456789", None, None, "queued"),
    ]


async def test_proof_lists_at_most_100_items_and_20_invalid(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    recipients = il_numbers(150) + [f"12{i}" for i in range(25)]
    response = await post(client, tenant, {"message": "hi", "recipients": recipients})
    assert response.status_code == 202
    proof = response.json()
    assert proof["total_recipients"] == proof["queued_count"] == 150
    assert len(proof["items"]) == 100
    assert proof["items"][0]["phone"] == "+972500000000"
    assert proof["invalid_recipients_count"] == 25
    assert len(proof["invalid_recipients"]) == 20
    assert await row_counts(ctx) == (1, 150)


async def test_every_spelling_of_one_number_counts_once(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    spellings = [
        "0502345678",
        "+972502345678",
        "00972502345678",
        "972502345678",
        "+972 (50) 234-5678",
        "050.234.5678",
    ]
    response = await post(client, tenant, {"message": "hi", "recipients": spellings})
    proof = response.json()
    assert proof["total_recipients"] == 1
    assert proof["duplicates_removed"] == len(spellings) - 1
    assert proof["items"] == [
        {"phone": "+972502345678", "lead_id": None, "status": "queued", "message_preview": "hi"}
    ]


async def test_tenant_region_decides_numbers_without_country_code(
    ctx: AppContext, client: httpx.AsyncClient
) -> None:
    us = await make_tenant(ctx, name="US shop", region="US")
    response = await post(client, us, {"message": "hi", "recipients": ["(650) 253-0000"]})
    assert response.status_code == 202
    assert response.json()["items"][0]["phone"] == "+16502530000"


async def test_no_recipients_is_400_with_what_was_received(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await post(client, tenant, {"message": "hi", "recipients": []})
    assert response.status_code == 400
    error = response.json()
    assert error["success"] is False
    assert error["error_code"] == "NO_RECIPIENTS"
    assert error["details"]["received_count"] == 0
    assert await row_counts(ctx) == (0, 0)


async def test_all_invalid_is_400_with_counts_reasons_and_examples(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    recipients = ["1", "22", "abc", "0501234", "+1234567890123456789", "x1", "5"]
    response = await post(client, tenant, {"message": "hi", "recipients": recipients})
    assert response.status_code == 400
    error = response.json()
    assert error["error_code"] == "NO_VALID_RECIPIENTS"
    details = error["details"]
    assert details["invalid_count"] == 7
    assert details["reasons"] == {"too_short": 4, "invalid_format": 2, "too_long": 1}
    assert len(details["examples"]) == 5
    assert details["examples"][0] == {"input": "1", "reason": "too_short"}
    assert await row_counts(ctx) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "", "recipients": ["0502345678"]}, "message"),
        ({"message": "   ", "recipients": ["0502345678"]}, "message"),
        ({"message": "x" * 4097, "recipients": ["0502345678"]}, "message"),
        ({"recipients": ["0502345678"]}, "message"),
        ({"message": "hi", "recipients": "0502345678"}, "recipients"),
        ({"message": "hi", "recipients": [972502345678]}, "recipients.0"),
        (
            {"message": "hi", "recipients": [{"phone": "0502345678", "lead_id": "x"}]},
            "recipients.0",
        ),
        ({"message": 5, "recipients": ["0502345678"]}, "message"),
        (
            {"message": "hi", "recipients": ["0502345678"], "allow_duplicate": "maybe"},
            "allow_duplicate",
        ),
    ],
)
async def test_malformed_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, body: object, field: str
) -> None:
    response = await post(client, tenant, body)
    assert response.status_code == 422
    error = response.json()
    assert error["error_code"] == "VALIDATION_ERROR"
    assert error["message"].startswith(field)
    assert any(e["field"].startswith(field) for e in error["details"]["errors"])
    assert await row_counts(ctx) == (0, 0)


async def test_message_of_exactly_4096_chars_is_accepted(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await post(client, tenant, {"message": "x" * 4096, "recipients": ["0502345678"]})
    assert response.status_code == 202


async def test_invalid_json_is_422(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    response = await client.post(
        URL, content=b"{not json", headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_too_many_recipients_is_413(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ctx.settings, "max_recipients", 3)
    response = await post(client, tenant, {"message": "hi", "recipients": il_numbers(4)})
    assert response.status_code == 413
    error = response.json()
    assert error["error_code"] == "TOO_MANY_RECIPIENTS"
    assert error["details"] == {"received_count": 4, "max": 3}
    assert await row_counts(ctx) == (0, 0)


async def test_unknown_or_foreign_session_is_404(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    other = await make_tenant(ctx, name="Other")
    for session_id in ("business_999", other.session_id):
        response = await post(
            client,
            tenant,
            {"message": "hi", "recipients": ["0502345678"], "session_id": session_id},
        )
        assert response.status_code == 404
        assert response.json()["error_code"] == "SESSION_NOT_FOUND"
    assert await row_counts(ctx) == (0, 0)


async def test_explicit_own_session_is_used(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await post(
        client,
        tenant,
        {"message": "hi", "recipients": ["0502345678"], "session_id": tenant.session_id},
    )
    assert response.status_code == 202
    assert response.json()["session_id"] == tenant.session_id


@pytest.mark.parametrize("authorization", [None, "Bearer wab_wrong", "Basic abc", "Bearer "])
async def test_requests_without_a_valid_key_are_401(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post(
        URL, json={"message": "hi", "recipients": ["0502345678"]}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHORIZED"
    assert (await client.get(URL, headers=headers)).status_code == 401
    assert await row_counts(ctx) == (0, 0)


async def test_disconnected_whatsapp_is_503_and_stores_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    put = await client.put(
        "/api/whatsapp/simulator", json={"connected": False}, headers=tenant.headers
    )
    assert put.status_code == 200
    response = await post(client, tenant, {"message": "hi", "recipients": ["0502345678"]})
    assert response.status_code == 503
    error = response.json()
    assert error["error_code"] == "WHATSAPP_NOT_CONNECTED"
    assert error["message"] == "WhatsApp לא מחובר. יש להתחבר תחילה"
    assert error["message_en"] == "WhatsApp is not connected. Connect first."
    assert await row_counts(ctx) == (0, 0)


@pytest.mark.slow
async def test_hanging_status_check_fails_open_after_5_seconds(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    assert ctx.settings.connection_check_timeout_s == 5.0
    await client.put(
        "/api/whatsapp/simulator", json={"status_delay_ms": 60_000}, headers=tenant.headers
    )
    started = time.monotonic()
    with capture_logs() as logs:
        response = await post(client, tenant, {"message": "hi", "recipients": ["0502345678"]})
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["connection_check"] == "unknown"
    assert elapsed >= 4.9
    assert any("timed out" in e["event"] and e["log_level"] == "warning" for e in logs)
    assert await row_counts(ctx) == (1, 1)


async def test_status_check_error_fails_open(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_args: object) -> object:
        raise ConnectionRefusedError("gateway down")

    monkeypatch.setattr(simulator_of(ctx), "connection_status", broken)
    response = await post(client, tenant, {"message": "hi", "recipients": ["0502345678"]})
    assert response.status_code == 202
    assert response.json()["connection_check"] == "unknown"


async def test_lifecycle_log_lines_carry_ids_counts_and_masked_invalid_inputs(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    with capture_logs() as logs:
        response = await post(
            client,
            tenant,
            {"message": "hi", "recipients": ["0502345678", "0502345678", "12345", "abc"]},
        )
    broadcast_id = response.json()["broadcast_id"]
    created = [e for e in logs if e["event"] == "[WA_BROADCAST] created"]
    assert len(created) == 1
    line = created[0]
    assert line["broadcast_id"] == broadcast_id
    assert line["queued_count"] == 1
    assert line["invalid_recipients_count"] == 2
    assert line["duplicates_removed"] == 1
    assert line["first_invalid"] == [
        {"input": "*2345", "reason": "too_short"},
        {"input": "abc", "reason": "invalid_format"},
    ]
    assert all("0502345678" not in str(e) for e in logs)


async def test_rejection_is_logged(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    with capture_logs() as logs:
        await post(client, tenant, {"message": "hi", "recipients": ["1", "2"]})
    rejected = [e for e in logs if e["event"] == "[WA_BROADCAST] rejected"]
    assert len(rejected) == 1
    assert rejected[0]["error_code"] == "NO_VALID_RECIPIENTS"
    assert rejected[0]["invalid_recipients_count"] == 2
    assert "broadcast_id" in rejected[0]
