"""The failed-recipients export quotes every cell, so no delimiter can expose a formula."""

from __future__ import annotations

import csv
import io

import httpx

from tests.integration.test_dashboard import API, browser, csrf  # noqa: F401 (fixtures)
from tests.support.dispatch import drain, scenario, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import TenantFixture
from wabroadcast.clock import FrozenClock
from wabroadcast.context import AppContext


async def test_every_cell_of_the_export_is_quoted(
    browser: httpx.AsyncClient,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    clock: FrozenClock,
    csrf: str,  # noqa: F811
) -> None:
    await unpaced(ctx, tenant.session_id)
    numbers = il_numbers(3)
    await scenario(
        client,
        tenant,
        fail_numbers={numbers[0]: "NOT_ON_WHATSAPP", numbers[1]: "NOT_ON_WHATSAPP"},
    )
    created = await client.post(
        API,
        json={
            "message": "hi",
            "recipients": [
                {"phone": numbers[0], "name": "a;=1+1;b", "lead_id": 7},
                {"phone": numbers[1], "name": "=1+1;x"},
                numbers[2],
            ],
        },
        headers=tenant.headers,
    )
    assert created.status_code == 202, created.text
    broadcast_id = created.json()["broadcast_id"]
    await drain(ctx, clock)

    response = await browser.get(f"/broadcasts/{broadcast_id}/failed.csv")
    assert response.status_code == 200
    text = response.content.decode("utf-8-sig")
    lines = text.splitlines()
    assert len(lines) == 3  # the header and the two failed recipients
    for line in lines:
        cells = line.split(",")
        assert all(c.startswith('"') and c.endswith('"') for c in cells), line
    rows = list(csv.DictReader(io.StringIO(text)))
    by_phone = {r["phone"]: r for r in rows}
    assert set(by_phone) == {numbers[0], numbers[1]}
    assert f'"{numbers[0]}","7","a;=1+1;b","failed"' in text
    assert by_phone[numbers[0]]["name"] == "a;=1+1;b"
    assert by_phone[numbers[0]]["error_code"] == "NOT_ON_WHATSAPP"
    # The leading-character guard still applies, inside the quotes.
    assert '"\'=1+1;x"' in text
    assert by_phone[numbers[1]]["name"] == "'=1+1;x"
    # The name sits whole inside one pair of quotes, so a ";" inside it splits nothing.
    assert ',"a;=1+1;b",' in lines[1] + lines[2]
