"""Whatever a client sends to the broadcast API, the answer is never a 5xx.

Hypothesis builds arbitrary JSON (huge integers, NaN and Infinity as Python's
JSON reader takes them, every kind of Unicode: lone surrogates sent as ``\\ud800``
escapes or as raw surrogate bytes, NUL, zero-width and direction marks) for
each field of ``POST /api/whatsapp/broadcasts``, for the body as a whole, for
the ``Idempotency-Key`` header and for the query strings of the list routes.

The promises: no 5xx; a 4xx leaves no new row in whatsapp_broadcasts,
whatsapp_broadcast_recipients or idempotency_requests; a 2xx is a proof that
parses and names a broadcast that can be read back. Deterministic
(``derandomize``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select

from tests.support.fake_graph import FakeGraph, serve_fake_graph
from tests.support.tenants import TEST_SECRET_KEY, TenantFixture
from wabroadcast.api import errors as api_errors
from wabroadcast.broadcasts.schemas import BroadcastAccepted
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.db.models import IdempotencyRequest, WhatsAppBroadcast, WhatsAppBroadcastRecipient
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus
from wabroadcast.pagination import encode_cursor, encode_session_cursor

URL = "/api/whatsapp/broadcasts"

# Examples per test and backend; raise it (e.g. to 2000) for a deeper search.
EXAMPLES = int(os.environ.get("WABROADCAST_PROPERTY_EXAMPLES", "120"))
PROPERTY_SETTINGS = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Hundreds of requests per test: no API rate limit (the frozen clock never refills it)."""
    return Settings(
        database_url=database_url,
        secret_key=SecretStr(TEST_SECRET_KEY),
        rate_limit_per_minute=0,
    )


@pytest.fixture
async def meta_session(client: httpx.AsyncClient, tenant: TenantFixture) -> AsyncIterator[str]:
    """A second session, through the Cloud API (a fake Graph server): one that takes templates."""
    graph = FakeGraph()
    graph.add_number("100000000000001", "EAAG-test-access-token-0001")
    with serve_fake_graph(graph) as base_url:
        response = await client.post(
            "/api/whatsapp/sessions",
            json={
                "session_id": "meta_1",
                "provider": "cloud_api",
                "config": {
                    "phone_number_id": "100000000000001",
                    "access_token": "EAAG-test-access-token-0001",
                    "app_secret": "test-app-secret-0001",
                    "verify_token": "test-verify-token-0001",
                    "graph_base_url": base_url,
                },
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        yield "meta_1"


# --- strategies --------------------------------------------------------------

SPECIAL_CHARS = st.sampled_from(
    ["\x00", "\u200b", "\u200c", "\u200d", "\u200e", "\u202e", "\u2060", "\ufeff", " ", "\n"]
)
CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]), SPECIAL_CHARS)
TEXT = st.text(CHARS, max_size=12)
INTEGERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), INTEGERS, st.floats(), TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)


def either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly values of the right shape, sometimes any JSON at all."""
    return st.one_of(plausible, plausible, JSON_VALUES)


VALID_PHONES = st.integers(min_value=0, max_value=9_999_999).map(lambda n: f"+97250{n:07d}")
PHONES = st.one_of(
    VALID_PHONES,
    st.sampled_from(["0502345678", "050-234-5678", "00972502345678", "+1 202 555 0100", "12"]),
    st.from_regex(r"\A\+?[0-9 ()\-]{0,16}\Z"),
    TEXT,
)
# Personal messages: fields, defaults, conditions, and what a template may not do.
TEMPLATE_MESSAGES = st.sampled_from(
    [
        "Hi {{ name }}",
        "{{ variables.x|default('y') }} {{ x }}",
        "{% if name %}a{% else %}b{% endif %}{{ lead_id }}",
        "{{ name|upper|truncate(5) }}",
        "{{",
        "{% for c in name %}{% endfor %}",
        "{{ name.__class__ }}",
        "{{ lead_id + 1 }}",
        "{{ name ~ x ~ variables }}",
        "{#",
    ]
)
VARIABLES = st.dictionaries(
    TEXT, st.one_of(TEXT, INTEGERS, st.floats(), st.booleans(), JSON_VALUES), max_size=3
)
MESSAGES = st.one_of(
    st.sampled_from(["hi", "Sale \U0001f600", "שלום", "\u200bhi\u200e"]),
    TEMPLATE_MESSAGES,
    TEXT,
    st.integers(min_value=4094, max_value=4098).map(lambda n: "x" * n),
)
NAMES = st.one_of(TEXT, st.integers(min_value=199, max_value=201).map(lambda n: "n" * n))
RECIPIENT_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "phone": either(PHONES),
        "name": either(NAMES),
        "lead_id": either(INTEGERS),
        "variables": either(VARIABLES),
        "extra": JSON_VALUES,
    },
)
RECIPIENTS = either(st.lists(st.one_of(PHONES, RECIPIENT_OBJECTS, JSON_VALUES), max_size=4))
TEMPLATES = either(
    st.fixed_dictionaries(
        {
            "name": either(st.sampled_from(["order_update", "x"])),
            "language": either(st.sampled_from(["en_US", "he"])),
        },
        optional={"components": either(st.lists(st.dictionaries(TEXT, JSON_VALUES), max_size=2))},
    )
)
KNOWN_KEYS = {
    "message",
    "recipients",
    "session_id",
    "template",
    "allow_duplicate",
    "strict_variables",
}
UNKNOWN_KEYS = st.dictionaries(
    TEXT.filter(lambda key: key not in KNOWN_KEYS), JSON_VALUES, min_size=1, max_size=2
)
OBJECT_BODIES = st.builds(
    lambda fields, unknown: {**fields, **unknown},
    st.fixed_dictionaries(
        {"message": either(MESSAGES), "recipients": RECIPIENTS},
        optional={
            "session_id": either(st.sampled_from([None, "business_1", "meta_1", "nope"])),
            "template": TEMPLATES,
            "allow_duplicate": either(st.booleans()),
            "strict_variables": either(st.booleans()),
        },
    ),
    st.one_of(st.just({}), st.just({}), UNKNOWN_KEYS),
)
BODIES = st.one_of(OBJECT_BODIES, OBJECT_BODIES, OBJECT_BODIES, JSON_VALUES)

# What a header value may hold on the wire: tab, visible ASCII, space and obs-text.
HEADER_BYTES = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]
IDEMPOTENCY_KEYS = st.one_of(
    st.none(),
    st.none(),
    st.sampled_from([b"order-1", b'"order-1"', b"", b'""', b"x" * 255, b"x" * 256]),
    st.from_regex(rb"\A[\x21-\x7e]{1,12}\Z"),
    st.lists(st.sampled_from(HEADER_BYTES), max_size=300).map(bytes),
)


def encode_json(value: Any, ascii_escapes: bool) -> bytes:
    """JSON text as a client would send it: NaN and Infinity as Python writes them, and a
    lone surrogate either as a ``\\ud800`` escape or as its raw (invalid UTF-8) bytes."""
    if ascii_escapes:
        return json.dumps(value, ensure_ascii=True).encode("ascii")
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


# --- the promises --------------------------------------------------------------


async def row_counts(ctx: AppContext) -> tuple[int, int, int]:
    async with ctx.database.transaction() as session:
        counts = []
        for model in (WhatsAppBroadcast, WhatsAppBroadcastRecipient, IdempotencyRequest):
            result = await session.execute(select(func.count()).select_from(model))
            counts.append(int(result.scalar_one()))
    return counts[0], counts[1], counts[2]


def same_json(sent: Any, stored: Any) -> bool:
    return json.dumps(sent, sort_keys=True) == json.dumps(stored, sort_keys=True)


async def check_create(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    content: bytes,
    body: Any,
    idempotency_key: bytes | None,
) -> httpx.Response:
    # As bytes: a header value may be any visible ASCII, space, tab or obs-text (0x80-0xff).
    headers = [(k.encode(), v.encode()) for k, v in tenant.headers.items()]
    headers.append((b"Content-Type", b"application/json"))
    if idempotency_key is not None:
        headers.append((b"Idempotency-Key", idempotency_key))
    before = await row_counts(ctx)
    response = await client.post(URL, content=content, headers=headers)
    after = await row_counts(ctx)
    assert response.status_code < 500, (response.status_code, response.text, content[:500])
    payload = response.json()
    event(f"{response.status_code} {payload.get('error_code', '')}")
    if response.status_code >= 400:
        assert payload["success"] is False, payload
        assert isinstance(payload["error_code"], str), payload
        assert after == before, (response.text, content[:500])
        return response
    assert response.status_code in (200, 202), response.text
    proof = BroadcastAccepted.model_validate(payload)
    if response.status_code == 202:
        assert after[0] == before[0] + 1
        assert after[1] == before[1] + proof.total_recipients
    else:
        assert proof.idempotent
        assert after[:2] == before[:2]
    stored = await client.get(f"{URL}/{proof.broadcast_id}", headers=tenant.headers)
    assert stored.status_code == 200, stored.text
    assert stored.json()["total_recipients"] == proof.total_recipients
    if isinstance(body, dict) and response.status_code == 202:
        assert same_json(body["message"], stored.json()["message"])
    listed = await client.get(f"{URL}/{proof.broadcast_id}/recipients", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == min(proof.total_recipients, 50)
    return response


@PROPERTY_SETTINGS
@given(body=BODIES, ascii_escapes=st.booleans(), idempotency_key=IDEMPOTENCY_KEYS)
async def test_any_broadcast_body_is_never_a_5xx_and_a_4xx_stores_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    meta_session: str,
    body: Any,
    ascii_escapes: bool,
    idempotency_key: bytes | None,
) -> None:
    await check_create(client, tenant, ctx, encode_json(body, ascii_escapes), body, idempotency_key)


# Bodies that get past validation: visible text to valid numbers, arbitrary names,
# lead ids, session ids and keys, so the later stages (storage, idempotency) are fuzzed.
ACCEPTABLE_BODIES = st.fixed_dictionaries(
    {
        "message": st.one_of(
            st.text(CHARS, max_size=12).map(lambda text: "m" + text),
            st.tuples(TEMPLATE_MESSAGES, st.text(CHARS, max_size=6)).map("".join),
        ),
        "recipients": st.lists(
            st.one_of(
                VALID_PHONES,
                st.fixed_dictionaries(
                    {"phone": VALID_PHONES},
                    optional={
                        "name": st.one_of(st.none(), NAMES),
                        "lead_id": st.one_of(st.none(), INTEGERS),
                        "variables": st.one_of(
                            st.none(),
                            st.dictionaries(
                                st.text(CHARS, min_size=1, max_size=8),
                                st.one_of(TEXT, INTEGERS, st.booleans()),
                                max_size=3,
                            ),
                        ),
                    },
                ),
            ),
            min_size=1,
            max_size=4,
        ),
    },
    optional={
        "session_id": st.one_of(st.sampled_from([None, "business_1", "meta_1"]), TEXT),
        "allow_duplicate": st.booleans(),
        "strict_variables": st.booleans(),
        "template": st.fixed_dictionaries(
            {"name": st.just("order_update"), "language": st.just("he")},
            optional={"components": st.lists(st.dictionaries(TEXT, JSON_VALUES), max_size=2)},
        ),
    },
)


@PROPERTY_SETTINGS
@given(body=ACCEPTABLE_BODIES, ascii_escapes=st.booleans(), idempotency_key=IDEMPOTENCY_KEYS)
async def test_nearly_valid_broadcasts_are_stored_and_read_back_or_refused_cleanly(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    meta_session: str,
    body: dict[str, Any],
    ascii_escapes: bool,
    idempotency_key: bytes | None,
) -> None:
    await check_create(client, tenant, ctx, encode_json(body, ascii_escapes), body, idempotency_key)


@PROPERTY_SETTINGS
@given(
    content=st.one_of(
        st.binary(max_size=64),
        st.text(CHARS, max_size=32).map(lambda text: text.encode("utf-8", "surrogatepass")),
    )
)
async def test_any_bytes_as_a_body_are_never_a_5xx(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, content: bytes
) -> None:
    await check_create(client, tenant, ctx, content, None, None)


# --- query strings of the list routes -----------------------------------------

LIMITS = st.one_of(
    st.sampled_from(
        ["1", "50", "100", "101", "500", "501", "0", "-1", "1e3", " 5", "5.0", "\u0663", ""]
    ),
    INTEGERS.map(str),
    TEXT,
)
STATUSES = st.one_of(
    st.sampled_from(
        [*(s.value for s in BroadcastStatus), *(s.value for s in RecipientStatus), "", "QUEUED"]
    ),
    TEXT,
)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


ID_CURSORS = st.one_of(
    st.sampled_from([encode_cursor(1), encode_cursor(2**63 - 1), encode_cursor(2**63), ""]),
    st.builds(lambda prefix, rest: b64(prefix + rest), st.sampled_from(["id:", "sid:", ""]), TEXT),
    INTEGERS.map(lambda n: b64(f"id:{n}")),
    TEXT,
)


SESSION_CURSORS = st.one_of(
    st.sampled_from([encode_session_cursor("business_1"), encode_session_cursor("meta_1")]),
    st.builds(lambda prefix, rest: b64(prefix + rest), st.sampled_from(["sid:", "id:"]), TEXT),
    TEXT,
)
SESSION_IDS = st.one_of(st.sampled_from(["business_1", "meta_1", "", "nope"]), TEXT)
BROADCAST_QUERY = {"status": STATUSES, "cursor": ID_CURSORS, "limit": LIMITS}
LIST_ROUTES: dict[str, dict[str, st.SearchStrategy[str]]] = {
    URL: BROADCAST_QUERY,
    f"{URL}/{{broadcast}}/recipients": BROADCAST_QUERY,
    "/api/whatsapp/sessions": {"cursor": SESSION_CURSORS, "limit": LIMITS},
    "/api/whatsapp/simulator/sends": {
        "session_id": SESSION_IDS,
        "cursor": ID_CURSORS,
        "limit": LIMITS,
    },
}
BROADCAST_IDS = st.one_of(
    st.just("{existing}"),
    INTEGERS.map(str),
    TEXT.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
)
JUNK_NAMES = st.one_of(
    TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=4)
)


@st.composite
def list_requests(draw: st.DrawFn) -> tuple[str, str]:
    """A list route and a query string: its own parameters (repeated, empty or with any
    value), sometimes unknown ones, percent-encoded from any bytes."""
    path = draw(st.sampled_from(sorted(LIST_ROUTES)))
    params = LIST_ROUTES[path]
    pairs: list[tuple[bytes, bytes]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if draw(st.integers(min_value=0, max_value=3)):
            name = draw(st.sampled_from(sorted(params)))
            value = draw(params[name]).encode("utf-8", "surrogatepass")
        else:
            name_bytes = draw(JUNK_NAMES)
            pairs.append((name_bytes, draw(st.binary(max_size=8))))
            continue
        pairs.append((name.encode(), value))
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    return path, query


@pytest.fixture
async def broadcast_id(client: httpx.AsyncClient, tenant: TenantFixture) -> int:
    created = await client.post(
        URL,
        json={"message": "listed", "recipients": ["0502345678", "0502345679"]},
        headers=tenant.headers,
    )
    assert created.status_code == 202, created.text
    value: int = created.json()["broadcast_id"]
    return value


@PROPERTY_SETTINGS
@given(list_request=list_requests(), target=BROADCAST_IDS)
async def test_any_query_string_on_a_list_route_is_never_a_5xx(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    meta_session: str,
    broadcast_id: int,
    list_request: tuple[str, str],
    target: str,
) -> None:
    path, query = list_request
    target = target.replace("{existing}", str(broadcast_id))
    url = path.replace("{broadcast}", target) + "?" + query
    before = await row_counts(ctx)
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code < 500, (url, response.status_code, response.text)
    assert await row_counts(ctx) == before
    payload = response.json()
    event(f"{path} {response.status_code} {payload.get('error_code', '')}")
    if response.status_code == 200:
        assert isinstance(payload["items"], list)
        assert payload["next_cursor"] is None or isinstance(payload["next_cursor"], str)
    else:
        assert payload["success"] is False, payload


def test_the_strategies_reach_the_awkward_corners() -> None:
    """NaN and a lone surrogate really travel as the tokens the server must survive."""
    assert encode_json({"x": math.nan, "y": "\ud800"}, True) == b'{"x": NaN, "y": "\\ud800"}'
    assert encode_json("\ud800", False) == b'"\xed\xa0\x80"'


# --- what these properties found ------------------------------------------------


async def post_text(client: httpx.AsyncClient, tenant: TenantFixture, text: str) -> httpx.Response:
    return await client.post(
        URL,
        content=text.encode("utf-8"),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )


def templated(components: str) -> str:
    return (
        '{"message": "hi", "recipients": ["+972502345671"], "session_id": "meta_1", '
        f'"template": {{"name": "order_update", "language": "he", "components": {components}}}}}'
    )


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_nan_or_infinity_in_template_components_is_422_not_stored(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    ctx: AppContext,
    meta_session: str,
    number: str,
) -> None:
    """Python's JSON reader takes these; PostgreSQL's json refused them (a 500) and SQLite
    stored them as null (a template other than the one posted)."""
    response = await post_text(client, tenant, templated(f'[{{"type": "body", "x": {number}}}]'))
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("template.components: "), response.text
    assert "NaN or infinite" in response.json()["message"]
    assert await row_counts(ctx) == (0, 0, 0)


async def test_template_components_nested_past_32_levels_are_422_not_a_500(
    client: httpx.AsyncClient, tenant: TenantFixture, ctx: AppContext, meta_session: str
) -> None:
    """400 levels exhausted the recursion of the check itself: a 500 (and minutes spent
    logging the traceback)."""
    for depth in (31, 400):
        nested = "[" * depth + "]" * depth
        response = await post_text(client, tenant, templated(f'[{{"x": {nested}}}]'))
        assert response.status_code == 422, response.text
        assert response.json()["message"] == (
            "template.components: Value error, must not nest more than 32 levels deep"
        )
    assert await row_counts(ctx) == (0, 0, 0)

    nested = "[" * 30 + "]" * 30  # the innermost list is the 32nd level: accepted
    response = await post_text(client, tenant, templated(f'[{{"x": {nested}}}]'))
    assert response.status_code == 202, response.text
    stored = await client.get(f"{URL}/{response.json()['broadcast_id']}", headers=tenant.headers)
    assert stored.json()["template"]["components"] == [{"x": json.loads(nested)}]


class _QuietLog:
    def exception(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.mark.parametrize(
    "url",
    [
        "/api/whatsapp/simulator/sends?session_id=%00",
        "/api/whatsapp/simulator?session_id=x%00",
        "/api/whatsapp/status?session_id=%00",
        "/api/whatsapp/sessions?cursor=" + encode_session_cursor("a\x00b"),
    ],
)
async def test_a_nul_in_a_session_id_or_session_cursor_is_a_4xx(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    # Rendering a 500's traceback takes tens of seconds; the status is what is checked.
    monkeypatch.setattr(api_errors, "log", _QuietLog())
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code < 500, response.text
