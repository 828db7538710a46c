"""POST /api/whatsapp/broadcasts with multipart/form-data: a CSV file, on both databases."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.rows import row_counts
from tests.support.tenants import TenantFixture
from wabroadcast.context import AppContext

URL = "/api/whatsapp/broadcasts"


async def upload(
    client: httpx.AsyncClient,
    tenant: TenantFixture | None,
    data: bytes,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    form = {"message": "Sale tomorrow"} if fields is None else fields
    auth = tenant.headers if tenant is not None else {}
    return await client.post(
        URL,
        data=form,
        files={"file": ("contacts.csv", data, "text/csv")},
        headers={**auth, **(headers or {})},
    )


async def stored_recipients(
    client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int
) -> list[tuple[Any, ...]]:
    listed = await client.get(f"{URL}/{broadcast_id}/recipients", headers=tenant.headers)
    return [(r["phone"], r["lead_id"], r["name"]) for r in listed.json()["items"]]


async def test_a_name_phone_number_file_is_queued_with_names(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    data = "Name,Phone Number,City\nנועה,052-345-6789,Haifa\nDan,0533456789,\nEli,hello,\n"
    response = await upload(client, tenant, data.encode())
    assert response.status_code == 202, response.text
    proof = response.json()
    assert (proof["success"], proof["status"], proof["queued_count"]) == (True, "queued", 2)
    assert proof["invalid_recipients"] == [{"input": "hello", "reason": "invalid_format"}]
    assert await stored_recipients(client, tenant, proof["broadcast_id"]) == [
        ("+972523456789", None, "נועה"),
        ("+972533456789", None, "Dan"),
    ]
    assert await row_counts(ctx) == (1, 2)


async def test_the_same_answer_as_the_json_variant(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    body = {
        "message": "Same list",
        "recipients": [{"phone": "052-345-6789", "lead_id": 7, "name": "Noa"}, "0533456789"],
    }
    by_json = await client.post(URL, json=body, headers=tenant.headers)
    assert by_json.status_code == 202, by_json.text
    # The same broadcast as a file: found as the identical broadcast just accepted.
    data = b"phone;lead_id;name\n052-345-6789;7;Noa\n0533456789;;\n"
    by_file = await upload(client, tenant, data, {"message": "Same list"})
    assert by_file.status_code == 200, by_file.text
    assert by_file.json()["broadcast_id"] == by_json.json()["broadcast_id"]
    assert set(by_file.json()) == set(by_json.json())


async def test_hebrew_headers_semicolons_and_a_session_field(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    data = b"\xef\xbb\xbf" + "שם;טלפון נייד;lead_id\nנועה;0523456789;12\n".encode()
    fields = {"message": "שלום", "session_id": tenant.session_id}
    response = await upload(client, tenant, data, fields)
    assert response.status_code == 202, response.text
    assert await stored_recipients(client, tenant, response.json()["broadcast_id"]) == [
        ("+972523456789", 12, "נועה")
    ]
    unknown = await upload(client, tenant, data, {"message": "שלום", "session_id": "nope"})
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "SESSION_NOT_FOUND")


async def test_utf16_from_excel(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    data = b"\xff\xfe" + "Name\tMobile\r\nNoa\t+972 52 345 6789\r\n".encode("utf-16-le")
    response = await upload(client, tenant, data)
    assert response.status_code == 202, response.text
    assert response.json()["queued_count"] == 1


async def test_no_phone_column_is_a_clear_error(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await upload(client, tenant, b"Name,Email\nNoa,noa@example.com\n")
    assert response.status_code == 422
    body = response.json()
    assert (body["success"], body["error_code"]) == (False, "NO_PHONE_COLUMN")
    assert body["details"] == {"columns": ["Name", "Email"]}
    assert "no phone column found; columns seen: Name, Email" in body["message"]
    assert await row_counts(ctx) == (0, 0)


async def test_a_file_that_is_not_text(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    response = await upload(client, tenant, "phone\n0502345678\nשם".encode("cp1255"))
    assert (response.status_code, response.json()["error_code"]) == (422, "CSV_NOT_TEXT")
    unclosed = await upload(client, tenant, b'phone\n"' + b"0" * 200_000)
    assert (unclosed.status_code, unclosed.json()["error_code"]) == (422, "VALIDATION_ERROR")
    assert unclosed.json()["message"].startswith("file: not a CSV file")
    assert await row_counts(ctx) == (0, 0)


async def test_fields_are_checked_like_the_json_body(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    data = b"phone\n0502345678\n"
    missing = await upload(client, tenant, data, {})
    assert (missing.status_code, missing.json()["error_code"]) == (422, "VALIDATION_ERROR")
    assert missing.json()["message"].startswith("message:")
    blank = await upload(client, tenant, data, {"message": "   "})
    assert (blank.status_code, blank.json()["error_code"]) == (422, "VALIDATION_ERROR")
    assert blank.json()["message"] == "message: Value error, message must contain visible text"
    too_long = await upload(client, tenant, data, {"message": "x" * 5000})
    assert too_long.status_code == 422
    assert too_long.json()["details"]["errors"][0]["field"] == "message"
    no_file = await client.post(
        URL, data={"message": "hi"}, files={"other": ("a.csv", data)}, headers=tenant.headers
    )
    assert (no_file.status_code, no_file.json()["message"]) == (422, "file: Field required")
    empty = await upload(client, tenant, b"")
    assert (empty.status_code, empty.json()["error_code"]) == (400, "NO_RECIPIENTS")
    assert await row_counts(ctx) == (0, 0)


async def test_needs_an_api_key(client: httpx.AsyncClient, ctx: AppContext) -> None:
    response = await upload(client, None, b"phone\n0502345678\n")
    assert (response.status_code, response.json()["error_code"]) == (401, "UNAUTHORIZED")
    assert await row_counts(ctx) == (0, 0)


async def test_an_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    data = b"phone\n0502345678\n0523456789\n"
    first = await upload(client, tenant, data, headers={"Idempotency-Key": "upload-1"})
    again = await upload(client, tenant, data, headers={"Idempotency-Key": "upload-1"})
    assert (first.status_code, again.status_code) == (202, 202)  # the first answer, replayed
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["broadcast_id"] == first.json()["broadcast_id"]
    other = await upload(
        client, tenant, b"phone\n0533456789\n", headers={"Idempotency-Key": "upload-1"}
    )
    assert (other.status_code, other.json()["error_code"]) == (422, "IDEMPOTENCY_KEY_MISMATCH")
    assert await row_counts(ctx) == (1, 2)


async def test_one_openapi_operation_documents_both_bodies_and_json_still_works(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][URL]["post"]
    content = operation["requestBody"]["content"]
    assert list(content) == ["application/json", "multipart/form-data"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/BroadcastCreate"}
    upload = content["multipart/form-data"]["schema"]
    assert upload["required"] == ["file", "message"]
    assert upload["properties"]["file"]["format"] == "binary"
    by_json = await client.post(
        URL, json={"message": "hi", "recipients": ["0502345678"]}, headers=tenant.headers
    )
    assert by_json.status_code == 202, by_json.text
