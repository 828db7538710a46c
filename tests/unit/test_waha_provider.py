"""The WAHA adapter against a fake WAHA over real HTTP: calls, answers, ids and failures.

No database: the adapter only needs a session's config, and the fake records
exactly what reached it, so each test checks what was sent and how the answer
was classified.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.fake_waha import GOWS, FakeWaha, RecordedCheck, serve_fake_waha
from wabroadcast.providers.base import (
    ConnectionState,
    ConnectionStatus,
    OutgoingMessage,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.waha.config import WahaConfig
from wabroadcast.providers.waha.provider import (
    API_KEY_REFUSED_DETAIL,
    NO_SUCH_SESSION_DETAIL,
    WahaError,
    WahaProvider,
    chat_id,
    long_message_id,
)

API_KEY = "waha-key-0001"
TO = "+972501234567"
DIGITS = "972501234567"
CHAT = "972501234567@c.us"


@pytest.fixture
def waha() -> FakeWaha:
    return FakeWaha(api_key=API_KEY)


@pytest.fixture
def base_url(waha: FakeWaha) -> Iterator[str]:
    with serve_fake_waha(waha) as url:
        yield url


@pytest.fixture
async def provider() -> AsyncIterator[WahaProvider]:
    adapter = WahaProvider()
    yield adapter
    await adapter.aclose()


def session_for(base_url: str, *, api_key: str = API_KEY, name: str = "default") -> SessionRef:
    config = WahaConfig(base_url=base_url + "/", api_key=api_key, session=name, hmac_key="h" * 32)
    return SessionRef("waha_1", 1, "waha", config.model_dump())


def text(to: str = TO, client_message_id: str = "wab-1-1") -> OutgoingMessage:
    return OutgoingMessage(to, "Shalom, sale today", client_message_id)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- the message id (pure) ---------------------------------------------------------------


def test_the_long_id_is_built_from_nowebs_key_id() -> None:
    noweb = {
        "key": {"remoteJid": f"{DIGITS}@s.whatsapp.net", "fromMe": True, "id": "3EB0A1B2C3"},
        "message": {"extendedTextMessage": {"text": "Hello"}},
        "status": "PENDING",
    }
    assert long_message_id(noweb, CHAT) == f"true_{CHAT}_3EB0A1B2C3"


def test_a_long_top_level_id_is_taken_as_it_is() -> None:
    gows = {"id": f"true_{CHAT}_3EB0A1B2C3", "_data": {"Info": {"ID": "3EB0A1B2C3"}}}
    assert long_message_id(gows, CHAT) == f"true_{CHAT}_3EB0A1B2C3"
    webjs = {"id": {"fromMe": True, "id": "ABC", "_serialized": f"true_{CHAT}_ABC"}}
    assert long_message_id(webjs, CHAT) == f"true_{CHAT}_ABC"


def test_a_bare_top_level_id_is_put_in_the_long_form() -> None:
    assert long_message_id({"id": "3EB0FF"}, CHAT) == f"true_{CHAT}_3EB0FF"


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {},
        {"key": {}},
        {"key": {"id": ""}},
        {"key": {"id": "has space"}},
        {"key": {"id": "x" * 65}},
        {"id": 12},
        {"id": "true_nochat"},
    ],
)
def test_an_answer_without_a_usable_id_has_none(document: object) -> None:
    assert long_message_id(document, CHAT) is None


def test_chat_ids() -> None:
    assert chat_id(TO) == CHAT
    assert chat_id(DIGITS) == CHAT
    assert chat_id("+97250-123") is None
    assert chat_id("+") is None
    assert chat_id("+٩٧٢") is None


# --- connection status -------------------------------------------------------------------


async def test_a_working_session_is_connected(base_url: str, provider: WahaProvider) -> None:
    status = await provider.connection_status(session_for(base_url))
    assert status == ConnectionStatus(ConnectionState.CONNECTED)


@pytest.mark.parametrize("waha_status", ["SCAN_QR_CODE", "STARTING", "STOPPED", "FAILED"])
async def test_any_other_status_is_disconnected_and_named(
    waha: FakeWaha, base_url: str, provider: WahaProvider, waha_status: str
) -> None:
    waha.sessions["default"] = waha_status
    status = await provider.connection_status(session_for(base_url))
    assert status == ConnectionStatus(
        ConnectionState.DISCONNECTED, f"WAHA session status {waha_status}"
    )


async def test_a_refused_api_key_is_disconnected(base_url: str, provider: WahaProvider) -> None:
    status = await provider.connection_status(session_for(base_url, api_key="wrong"))
    assert status == ConnectionStatus(ConnectionState.DISCONNECTED, API_KEY_REFUSED_DETAIL)


async def test_an_unknown_session_is_disconnected(base_url: str, provider: WahaProvider) -> None:
    status = await provider.connection_status(session_for(base_url, name="shop2"))
    assert status == ConnectionStatus(ConnectionState.DISCONNECTED, NO_SUCH_SESSION_DETAIL)


async def test_a_server_error_on_the_status_check_raises(provider: WahaProvider) -> None:
    broken = FakeWaha(api_key=API_KEY)
    broken.handle = lambda *args: (502, b"<html>bad gateway</html>", 0.0)  # type: ignore[method-assign]
    with serve_fake_waha(broken) as url, pytest.raises(WahaError, match="502"):
        await provider.connection_status(session_for(url))


async def test_an_unreachable_waha_raises_on_the_status_check(provider: WahaProvider) -> None:
    with pytest.raises(httpx.ConnectError):
        await provider.connection_status(session_for(f"http://127.0.0.1:{closed_port()}"))


# --- sending -----------------------------------------------------------------------------


async def test_a_send_checks_the_number_then_posts_the_documented_body(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    result = await provider.send(session_for(base_url), text())
    assert waha.checks == [RecordedCheck(DIGITS, "default")]
    (recorded,) = waha.sends
    assert recorded.api_key == API_KEY
    assert recorded.body == {"session": "default", "chatId": CHAT, "text": "Shalom, sale today"}
    assert result == SendResult(SendOutcome.SENT, provider_message_id=recorded.message_id)
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith(f"true_{CHAT}_3EB0")


async def test_a_gows_answer_gives_the_same_long_id(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    waha.engine = GOWS
    result = await provider.send(session_for(base_url), text())
    (recorded,) = waha.sends
    assert result == SendResult(SendOutcome.SENT, provider_message_id=recorded.message_id)


async def test_a_number_not_on_whatsapp_fails_without_a_send(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    waha.not_on_whatsapp.add(DIGITS)
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.FAILED
    assert result.error_code == "NOT_ON_WHATSAPP"
    assert result.provider_message_id is None
    assert len(waha.checks) == 1
    assert waha.sends == []


async def test_a_refused_message_fails_with_wahas_words(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    body = {"statusCode": 400, "message": ["text should not be empty"], "error": "Bad Request"}
    waha.script(DIGITS, (400, json.dumps(body).encode()))
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.FAILED
    assert result.error_code == "WAHA_HTTP_400"
    assert result.error_message is not None
    assert result.error_message.startswith("text should not be empty")


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_api_key_on_send_disconnects(
    waha: FakeWaha, base_url: str, provider: WahaProvider, status: int
) -> None:
    waha.script(DIGITS, (status, b'{"message":"Unauthorized","statusCode":401}'))
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.DISCONNECTED
    assert result.error_code == "WAHA_UNAUTHORIZED"


async def test_a_wrong_api_key_disconnects_before_anything_is_sent(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    result = await provider.send(session_for(base_url, api_key="wrong"), text())
    assert result.outcome is SendOutcome.DISCONNECTED
    assert waha.sends == []


async def test_a_session_that_stops_working_disconnects(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    waha.sessions["default"] = "SCAN_QR_CODE"
    result = await provider.send(session_for(base_url), text())
    assert result.outcome is SendOutcome.DISCONNECTED
    assert result.error_code == "WAHA_SESSION_NOT_WORKING"
    assert result.error_message is not None
    assert "SCAN_QR_CODE" in result.error_message
    assert waha.sends == []


async def test_a_422_not_working_on_send_disconnects(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    body = {"error": "not as expected", "session": "default", "status": "STARTING"}
    waha.script(DIGITS, (422, json.dumps({**body, "expected": ["WORKING"]}).encode()))
    result = await provider.send(session_for(base_url), text())
    assert (result.outcome, result.error_code) == (
        SendOutcome.DISCONNECTED,
        "WAHA_SESSION_NOT_WORKING",
    )


async def test_another_422_fails_the_recipient(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    body = {"statusCode": 422, "message": "WAHA Core support only 'default' session."}
    waha.script(DIGITS, (422, json.dumps(body).encode()))
    result = await provider.send(session_for(base_url), text())
    assert (result.outcome, result.error_code) == (SendOutcome.FAILED, "WAHA_HTTP_422")


async def test_an_unknown_session_disconnects_at_the_number_check(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    result = await provider.send(session_for(base_url, name="shop2"), text())
    assert result.outcome is SendOutcome.DISCONNECTED
    assert waha.sends == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_retried_later(
    waha: FakeWaha, base_url: str, provider: WahaProvider, status: int
) -> None:
    waha.script(DIGITS, (status, b"<html>oops</html>"))
    session = session_for(base_url)
    first = await provider.send(session, text())
    assert (first.outcome, first.error_code) == (SendOutcome.RETRY_LATER, f"WAHA_HTTP_{status}")
    second = await provider.send(session, text())
    assert second.outcome is SendOutcome.SENT
    assert len(waha.sends) == 2


async def test_a_refused_connection_is_retried(provider: WahaProvider) -> None:
    result = await provider.send(session_for(f"http://127.0.0.1:{closed_port()}"), text())
    assert result.outcome is SendOutcome.RETRY_LATER


async def test_a_read_timeout_raises_because_the_message_may_have_left(
    waha: FakeWaha, base_url: str
) -> None:
    waha.stall(DIGITS, 2.0)
    adapter = WahaProvider(timeout=httpx.Timeout(0.5, connect=1.0))
    try:
        with pytest.raises(httpx.ReadTimeout):
            await adapter.send(session_for(base_url), text())
    finally:
        await adapter.aclose()
    assert len(waha.sends) == 1


async def test_a_success_without_an_id_raises(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    waha.script(DIGITS, (201, b'{"status":"PENDING"}'))
    with pytest.raises(WahaError, match="may have been sent"):
        await provider.send(session_for(base_url), text())


async def test_send_many_stops_at_a_disconnect(
    waha: FakeWaha, base_url: str, provider: WahaProvider
) -> None:
    waha.script("972501234568", (401, b'{"message":"Unauthorized"}'))
    messages = [text("+972501234567"), text("+972501234568"), text("+972501234569")]
    seen: list[int] = []
    results = await provider.send_many(
        session_for(base_url), messages, on_result=lambda i, r: seen.append(i)
    )
    assert [r.outcome for r in results] == [SendOutcome.SENT, SendOutcome.DISCONNECTED]
    assert seen == [0, 1]
    assert len(waha.sends) == 2


def test_the_provider_takes_no_client_message_id() -> None:
    assert WahaProvider.supports_client_message_id is False
    assert WahaProvider.kind == "waha"
