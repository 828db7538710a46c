"""Personal messages on both databases: each recipient gets its own text, what some lack
is reported (or refused with ``strict_variables``), what is shown is what was sent."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support.dispatch import (
    URL,
    all_recipients,
    dispatcher,
    drain,
    recipients,
    sends,
    unpaced,
)
from tests.support.rows import il_numbers, row_counts
from tests.support.tenants import TenantFixture
from wabroadcast.broadcasts.create import STREAM_CHUNK
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcastRecipient as R

MESSAGE = 'Hello {{name|default("friend")}}, your order {{variables.order}} ships to {{city}}'


@pytest.fixture(autouse=True)
async def fast_session(ctx: AppContext, tenant: TenantFixture) -> None:
    await unpaced(ctx, tenant.session_id)


async def post(
    client: httpx.AsyncClient, tenant: TenantFixture, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(URL, json=body, headers=tenant.headers)


async def refused(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, body: dict[str, Any]
) -> dict[str, Any]:
    """The 422 envelope of a create that must store nothing."""
    before = await row_counts(ctx)
    response = await post(client, tenant, body)
    assert response.status_code == 422, response.text
    assert await row_counts(ctx) == before
    error: dict[str, Any] = response.json()
    return error


PEOPLE: list[dict[str, Any]] = [
    {"phone": "050-234-5678", "name": "Dana", "variables": {"order": "A-1", "city": "Haifa"}},
    {"phone": "+972 52 345 6789", "variables": {"order": "A-2", "city": "Eilat"}},
    {"phone": "0533456789", "name": "Noa", "variables": {"order": 3}},
]
EXPECTED = {
    "+972502345678": "Hello Dana, your order A-1 ships to Haifa",
    "+972523456789": "Hello friend, your order A-2 ships to Eilat",
    "+972533456789": "Hello Noa, your order 3 ships to ",
}


async def test_each_recipient_gets_its_own_text_and_what_is_shown_is_what_was_sent(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    response = await post(client, tenant, {"message": MESSAGE, "recipients": PEOPLE})
    assert response.status_code == 202, response.text
    proof = response.json()
    # A missing name has a default; a missing city does not: one recipient lacks it.
    assert proof["missing_variables"] == [
        {"variable": "city", "count": 1, "phones": ["+972533456789"]}
    ]
    assert {i["phone"]: i["message_preview"] for i in proof["items"]} == EXPECTED

    listed = await all_recipients(client, tenant, proof["broadcast_id"])
    assert {r["phone"]: r["rendered_message"] for r in listed} == EXPECTED

    await drain(ctx, clock)
    sent = (await sends(client, tenant))["items"]
    assert {s["phone"]: s["text"] for s in sent} == EXPECTED
    shown = (await client.get(f"{URL}/{proof['broadcast_id']}", headers=tenant.headers)).json()
    assert shown["status"] == "completed"
    assert shown["message"] == MESSAGE


async def test_strict_variables_refuses_and_stores_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    error = await refused(
        client,
        tenant,
        ctx,
        {"message": "Hi {{name}} {{city}}", "recipients": PEOPLE, "strict_variables": True},
    )
    assert error["error_code"] == "MISSING_VARIABLES"
    assert error["details"]["missing_variables"] == [
        {"variable": "city", "count": 1, "phones": ["+972533456789"]},
        {"variable": "name", "count": 1, "phones": ["+972523456789"]},
    ]

    # Everyone has what the message uses: strict accepts it.
    response = await post(
        client,
        tenant,
        {"message": "Hi {{variables.order}}", "recipients": PEOPLE, "strict_variables": True},
    )
    assert response.status_code == 202, response.text
    assert response.json()["missing_variables"] == []


async def test_strict_refusal_of_a_streamed_list_rolls_every_row_back(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    # Longer than a chunk: rows are inserted while later ones are still rendered.
    people: list[dict[str, Any]] = [
        {"phone": phone, "name": f"P{n}"} for n, phone in enumerate(il_numbers(STREAM_CHUNK + 5))
    ]
    del people[-1]["name"]
    error = await refused(
        client,
        tenant,
        ctx,
        {"message": "Hi {{name}}", "recipients": people, "strict_variables": True},
    )
    assert error["details"]["missing_variables"][0]["count"] == 1

    response = await post(client, tenant, {"message": "Hi {{name}}", "recipients": people})
    assert response.status_code == 202, response.text
    proof = response.json()
    assert proof["queued_count"] == STREAM_CHUNK + 5
    assert proof["missing_variables"] == [
        {"variable": "name", "count": 1, "phones": [people[-1]["phone"]]}
    ]
    last = await recipients(client, tenant, proof["broadcast_id"])
    assert last[0]["rendered_message"] == "Hi P0"


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("Hi {{ name ", "line 1"),
        ("{% for c in name %}{{ c }}{% endfor %}", "{% if %}"),
        ("{{ name.upper() }}", "called"),
        ("{{ name|center(100000) }}", "|center"),
        ("{{ name * 1000 }}", "multiplied"),
    ],
)
async def test_a_message_that_is_no_safe_template_is_refused(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, message: str, says: str
) -> None:
    error = await refused(client, tenant, ctx, {"message": message, "recipients": PEOPLE})
    assert error["error_code"] == "VALIDATION_ERROR"
    assert error["message"].startswith("message: ")
    assert says in error["message"]


async def test_a_text_that_cannot_be_made_for_someone_is_refused_naming_them(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext
) -> None:
    error = await refused(
        client,
        tenant,
        ctx,
        {
            "message": "{{ name }}",
            "recipients": [{"phone": "0502345678", "name": "Dana"}, "0523456789"],
        },
    )
    assert error["details"] == {
        "field": "message",
        "phone": "+972523456789",
        "reason": "its text would be empty",
    }


async def test_the_same_template_with_other_data_is_another_broadcast(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    first = await post(client, tenant, {"message": "Hi {{name}}", "recipients": PEOPLE})
    assert first.status_code == 202
    again = await post(client, tenant, {"message": "Hi {{name}}", "recipients": PEOPLE})
    assert again.status_code == 200
    assert again.json()["idempotent"] is True
    assert again.json()["broadcast_id"] == first.json()["broadcast_id"]
    # The replay carries what the first answer reported.
    assert again.json()["missing_variables"] == first.json()["missing_variables"]
    assert again.json()["items"] == first.json()["items"]

    renamed = [dict(p, name="Other") for p in PEOPLE]
    other = await post(client, tenant, {"message": "Hi {{name}}", "recipients": renamed})
    assert other.status_code == 202
    assert other.json()["broadcast_id"] != first.json()["broadcast_id"]

    # A client's Idempotency-Key with other per-recipient data is a mismatch.
    keyed = {"Idempotency-Key": "order-run-7", **tenant.headers}
    assert (
        await client.post(URL, json={"message": "Hi {{name}}", "recipients": PEOPLE}, headers=keyed)
    ).status_code == 202
    mismatch = await client.post(
        URL, json={"message": "Hi {{name}}", "recipients": renamed}, headers=keyed
    )
    assert mismatch.status_code == 422
    assert mismatch.json()["error_code"] == "IDEMPOTENCY_KEY_MISMATCH"


async def test_csv_columns_become_variables(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    data = b"Name;Phone Number;City\nDana;050-234-5678;Haifa\nNoa;052-345-6789;\n"
    response = await client.post(
        URL,
        data={"message": "{{name}}, we open in {{City|default('your city')}}"},
        files={"file": ("people.csv", data, "text/csv")},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    await dispatcher(ctx).run_until_idle()
    sent = {s["phone"]: s["text"] for s in (await sends(client, tenant))["items"]}
    assert sent == {
        "+972502345678": "Dana, we open in Haifa",
        "+972523456789": "Noa, we open in your city",
    }


async def test_a_plain_message_is_stored_once_not_per_recipient(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, clock: FrozenClock
) -> None:
    # Braces that are no template field stay text.
    message = "50% off {today} only }}"
    response = await post(client, tenant, {"message": message, "recipients": PEOPLE})
    assert response.status_code == 202, response.text
    async with ctx.database.transaction() as session:
        stored = (await session.execute(select(R.rendered_message))).scalars().all()
    assert stored == [None, None, None]
    await drain(ctx, clock)
    assert {s["text"] for s in (await sends(client, tenant))["items"]} == {message}
