"""The Cloud API adapter against a fake Graph API over real HTTP: bodies, answers, failures.

No database: the adapter only needs a session's config, and the fake records
exactly what reached it, so each test checks both what was sent and how the
answer was classified.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import ValidationError

from tests.support.fake_graph import FakeGraph, serve_fake_graph
from wabroadcast.providers.base import (
    ConnectionState,
    OutgoingMessage,
    Pace,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.cloud_api import PLUGIN
from wabroadcast.providers.cloud_api.config import CloudApiConfig
from wabroadcast.providers.cloud_api.errors import META_ERRORS
from wabroadcast.providers.cloud_api.provider import (
    ACCESS_REFUSED_DETAIL,
    NUMBER_NOT_FOUND_DETAIL,
    CloudApiError,
    CloudApiProvider,
)

PHONE_NUMBER_ID = "100000000000001"
TOKEN = "EAAG-test-token"
TO = "+972501234567"
TO_DIGITS = "972501234567"


@pytest.fixture
def graph() -> FakeGraph:
    fake = FakeGraph()
    fake.add_number(PHONE_NUMBER_ID, TOKEN)
    return fake


@pytest.fixture
def base_url(graph: FakeGraph) -> Iterator[str]:
    with serve_fake_graph(graph) as url:
        yield url


@pytest.fixture
async def provider() -> AsyncIterator[CloudApiProvider]:
    adapter = CloudApiProvider()
    yield adapter
    await adapter.aclose()


def session_for(
    base_url: str, *, token: str = TOKEN, phone_number_id: str = PHONE_NUMBER_ID
) -> SessionRef:
    config = CloudApiConfig(
        phone_number_id=phone_number_id,
        access_token=token,
        app_secret="app-secret",
        verify_token="verify-me",
        graph_base_url=base_url + "/",
    )
    return SessionRef("s-1", 1, "cloud_api", config.model_dump())


def text(client_message_id: str = "wab-1-1", to: str = TO) -> OutgoingMessage:
    return OutgoingMessage(to, "Shalom, sale today", client_message_id)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- sending -----------------------------------------------------------------------------


async def test_a_text_send_posts_the_documented_body(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    result = await provider.send(session_for(base_url), text("wab-42-1"))
    (recorded,) = graph.requests
    assert result == SendResult(SendOutcome.SENT, provider_message_id=recorded.message_id)
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("wamid.")
    assert recorded.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
    assert recorded.authorization == f"Bearer {TOKEN}"
    assert recorded.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO_DIGITS,
        "biz_opaque_callback_data": "wab-42-1",
        "type": "text",
        "text": {"preview_url": False, "body": "Shalom, sale today"},
    }


async def test_a_template_send_posts_the_template_instead_of_the_text(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}]
    message = OutgoingMessage(
        TO,
        "ignored when a template is set",
        "wab-7-1",
        {"name": "order_update", "language": "en_US", "components": components},
    )
    result = await provider.send(session_for(base_url), message)
    assert result.outcome is SendOutcome.SENT
    (recorded,) = graph.requests
    assert recorded.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO_DIGITS,
        "biz_opaque_callback_data": "wab-7-1",
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": components,
        },
    }


async def test_a_template_without_components_sends_none(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    message = OutgoingMessage(TO, "x", "wab-8-1", {"name": "hello_world", "language": "he"})
    assert (await provider.send(session_for(base_url), message)).outcome is SendOutcome.SENT
    (recorded,) = graph.requests
    assert isinstance(recorded.body, dict)
    assert recorded.body["template"] == {"name": "hello_world", "language": {"code": "he"}}


@pytest.mark.parametrize(
    "template",
    [
        {"language": "he"},
        {"name": "hello_world"},
        {"name": "", "language": "he"},
        {"name": "hello_world", "language": {"policy": "deterministic"}},
        {"name": "hello_world", "language": "he", "components": [object()]},
    ],
)
async def test_an_unusable_template_fails_without_a_request(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider, template: dict[str, object]
) -> None:
    message = OutgoingMessage(TO, "x", "wab-9-1", template)
    result = await provider.send(session_for(base_url), message)
    assert result.outcome is SendOutcome.FAILED
    assert result.error_code == "TEMPLATE_INVALID"
    assert graph.sends_received == 0


async def test_undeliverable_fails_the_recipient_with_metas_words(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.fail_always(TO_DIGITS, 131026)
    result = await provider.send(session_for(base_url), text())
    assert result == SendResult(
        SendOutcome.FAILED,
        error_code="META_131026",
        error_message=f"Message Undeliverable. {META_ERRORS[131026][1]}",
    )


async def test_a_throughput_error_is_retried_and_the_next_send_goes_through(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.script_errors(TO_DIGITS, [130429])
    session = session_for(base_url)
    first = await provider.send(session, text("wab-1-1"))
    assert first.outcome is SendOutcome.RETRY_LATER
    assert first.error_code == "META_130429"
    second = await provider.send(session, text("wab-1-2"))
    assert second.outcome is SendOutcome.SENT
    assert graph.sends_received == 2
    assert graph.sends_accepted == 1


async def test_a_spam_limit_blocks_the_account(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.fail_always(TO_DIGITS, 131048)
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.ACCOUNT_BLOCKED
    assert result.error_code == "META_131048"


async def test_a_refused_token_disconnects_the_session(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    result = await provider.send(session_for(base_url, token="EAAG-wrong"), text())
    assert result.outcome is SendOutcome.DISCONNECTED
    assert result.error_code == "META_190"
    assert graph.sends_accepted == 0


async def test_an_expired_token_disconnects_the_session(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.expire_token(TOKEN)
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.DISCONNECTED
    assert result.error_code == "META_190"
    assert result.error_message is not None
    assert "Session has expired" in result.error_message


async def test_a_server_error_page_is_retried(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.script_errors(TO_DIGITS, [(502, b"<html>Bad Gateway</html>")])
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.RETRY_LATER
    assert result.error_code == "META_HTTP_502"


async def test_a_refused_connection_is_retried(provider: CloudApiProvider) -> None:
    session = session_for(f"http://127.0.0.1:{closed_port()}")
    result = await provider.send(session, text())
    assert result.outcome is SendOutcome.RETRY_LATER
    assert result.error_code == "CONNECTION_REFUSED"


async def test_a_200_without_a_message_id_raises(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.script_errors(TO_DIGITS, [(200, b'{"messaging_product":"whatsapp"}')])
    with pytest.raises(CloudApiError, match="without a message id"):
        await provider.send(session_for(base_url), text())


async def test_a_read_timeout_raises_because_the_message_may_have_left(graph: FakeGraph) -> None:
    graph.stall(TO_DIGITS, 0.5)
    impatient = CloudApiProvider(timeout=httpx.Timeout(0.1, connect=5.0))
    try:
        with serve_fake_graph(graph) as url:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.send(session_for(url), text())
            assert graph.sends_received == 1
    finally:
        await impatient.aclose()


async def test_send_many_reports_each_result_and_stops_at_a_blocked_account(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    graph.fail_always("972500000002", 131048)
    messages = [text(f"wab-{n}-1", f"+97250000000{n}") for n in range(1, 5)]
    reported: list[tuple[int, SendOutcome]] = []
    results = await provider.send_many(
        session_for(base_url),
        messages,
        on_result=lambda position, result: reported.append((position, result.outcome)),
    )
    assert [result.outcome for result in results] == [
        SendOutcome.SENT,
        SendOutcome.ACCOUNT_BLOCKED,
    ]
    assert reported == [(0, SendOutcome.SENT), (1, SendOutcome.ACCOUNT_BLOCKED)]
    assert graph.sends_received == 2


async def test_send_many_asks_for_more_until_there_is_none(
    graph: FakeGraph, base_url: str, provider: CloudApiProvider
) -> None:
    batches = [[text("wab-2-1", "+972500000002")], [text("wab-3-1", "+972500000003")], []]
    asked: list[int] = []

    def more() -> list[OutgoingMessage]:
        asked.append(1)
        return batches.pop(0)

    results = await provider.send_many(
        session_for(base_url), [text("wab-1-1", "+972500000001")], more=more
    )
    assert [result.outcome for result in results] == [SendOutcome.SENT] * 3
    assert len(asked) == 3
    assert [send.body["to"] for send in graph.requests if isinstance(send.body, dict)] == [
        "972500000001",
        "972500000002",
        "972500000003",
    ]


# --- connection status -------------------------------------------------------------------


async def test_a_readable_number_is_connected(base_url: str, provider: CloudApiProvider) -> None:
    status = await provider.connection_status(session_for(base_url))
    assert status.state is ConnectionState.CONNECTED


async def test_a_bad_token_is_disconnected(base_url: str, provider: CloudApiProvider) -> None:
    status = await provider.connection_status(session_for(base_url, token="EAAG-wrong"))
    assert status.state is ConnectionState.DISCONNECTED
    assert status.detail == ACCESS_REFUSED_DETAIL


async def test_an_unknown_phone_number_id_is_disconnected(
    base_url: str, provider: CloudApiProvider
) -> None:
    session = session_for(base_url, phone_number_id="999999999999999")
    status = await provider.connection_status(session)
    assert status.state is ConnectionState.DISCONNECTED
    assert status.detail == NUMBER_NOT_FOUND_DETAIL


async def test_an_unreachable_graph_api_raises(provider: CloudApiProvider) -> None:
    with pytest.raises(httpx.ConnectError):
        await provider.connection_status(session_for(f"http://127.0.0.1:{closed_port()}"))


# --- plugin and config -------------------------------------------------------------------


def test_the_plugin_record() -> None:
    assert PLUGIN.kind == "cloud_api"
    assert PLUGIN.config_model is CloudApiConfig
    assert PLUGIN.secret_fields == {"access_token", "app_secret", "verify_token"}
    assert PLUGIN.default_pace == Pace(rate_per_minute=3600, jitter_ms=0)
    assert PLUGIN.webhook_key("s-1", {"phone_number_id": PHONE_NUMBER_ID}) == PHONE_NUMBER_ID
    assert PLUGIN.webhook is not None
    assert PLUGIN.webhook.verify_subscription is not None
    assert set(PLUGIN.form_fields) == set(CloudApiConfig.model_fields)


def test_the_config_defaults_and_normalises_the_base_url() -> None:
    config = CloudApiConfig(
        phone_number_id=PHONE_NUMBER_ID,
        access_token=TOKEN,
        app_secret="s",
        verify_token="v",
        graph_base_url="http://127.0.0.1:9000/proxy//",
    )
    assert config.api_version == "v23.0"
    assert config.graph_base_url == "http://127.0.0.1:9000/proxy"
    assert CloudApiConfig(
        phone_number_id="1", access_token="t", app_secret="s", verify_token="v"
    ).graph_base_url == ("https://graph.facebook.com")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone_number_id", "+15550001111"),
        ("phone_number_id", "١٢٣"),
        ("phone_number_id", "1" * 33),
        ("access_token", "has space"),
        ("access_token", ""),
        ("api_version", "23.0"),
        ("api_version", "v23"),
        ("graph_base_url", "ftp://graph.facebook.com"),
        ("graph_base_url", "graph.facebook.com"),
        ("graph_base_url", "https://graph.facebook.com?x=1"),
        ("graph_base_url", "https:// graph.facebook.com"),
        ("extra_field", "x"),
    ],
)
def test_bad_config_is_refused(field: str, value: str) -> None:
    values = {
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": TOKEN,
        "app_secret": "s",
        "verify_token": "v",
        field: value,
    }
    with pytest.raises(ValidationError):
        CloudApiConfig.model_validate(values)


def test_config_errors_do_not_repeat_a_secret_in_their_message() -> None:
    secret = "EAAG secret with space"
    with pytest.raises(ValidationError) as caught:
        CloudApiConfig.model_validate(
            {"phone_number_id": "1", "access_token": secret, "app_secret": "s", "verify_token": "v"}
        )
    assert all(secret not in error["msg"] for error in caught.value.errors())


async def test_the_provider_can_send_again_after_being_closed(
    graph: FakeGraph, base_url: str
) -> None:
    adapter = CloudApiProvider(clients=2, max_connections=4)
    session = session_for(base_url)
    try:
        sent = [await adapter.send(session, text(f"wab-{n}-1")) for n in range(3)]
        await adapter.aclose()
        sent.append(await adapter.send(session, text("wab-9-1")))
    finally:
        await adapter.aclose()
    assert [result.outcome for result in sent] == [SendOutcome.SENT] * 4
    assert len({result.provider_message_id for result in sent}) == 4


async def test_no_free_connection_in_time_is_retried(graph: FakeGraph) -> None:
    graph.stall("972500000001", 0.5)
    one_connection = CloudApiProvider(
        timeout=httpx.Timeout(5.0, pool=0.05), clients=1, max_connections=1
    )
    try:
        with serve_fake_graph(graph) as url:
            session = session_for(url)
            busy = asyncio.create_task(
                one_connection.send(session, text("wab-1-1", "+972500000001"))
            )
            await asyncio.sleep(0.1)
            waiting = await one_connection.send(session, text("wab-2-1", "+972500000002"))
            assert (await busy).outcome is SendOutcome.SENT
    finally:
        await one_connection.aclose()
    assert waiting.outcome is SendOutcome.RETRY_LATER
    assert waiting.error_code == "TIMEOUT"
    assert [send.body["to"] for send in graph.requests if isinstance(send.body, dict)] == [
        "972500000001"
    ]
