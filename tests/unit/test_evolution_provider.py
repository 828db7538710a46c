"""The Evolution adapter's answers, row by row: the status table, how a send's answer is
classified, and what ``webhook/set`` registers (over httpx's mock transport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from wabroadcast.domain.errors import ProviderSetupFailed
from wabroadcast.providers.base import (
    ConnectionState,
    OutgoingMessage,
    Pace,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.evolution import PLUGIN
from wabroadcast.providers.evolution.errors import classify_error, evolution_text
from wabroadcast.providers.evolution.provider import EvolutionError, EvolutionProvider
from wabroadcast.providers.evolution.setup import register_webhook

BASE_URL = "http://evo.test"
API_KEY = "EVOLUTION-GLOBAL-KEY-0001"
SECRET = "ab" * 32
WEBHOOK_URL = "https://wab.example/api/whatsapp/webhooks/evolution/evo_1"
REF = SessionRef(
    session_id="evo_1",
    tenant_id=1,
    provider="evolution",
    config={"base_url": BASE_URL, "api_key": API_KEY, "instance": "shop1"},
    webhook_secret=SECRET,
)
MESSAGE = OutgoingMessage("+972501234567", "Hello", "wab-1-1")
NOT_ON_WHATSAPP = {
    "status": 400,
    "error": "Bad Request",
    "response": {
        "message": [
            {"jid": "972501234567@s.whatsapp.net", "exists": False, "number": "972501234567"}
        ]
    },
}

Handler = Callable[[httpx.Request], httpx.Response]


def evolution_error(status: int, message: object) -> dict[str, object]:
    return {"status": status, "error": "Error", "response": {"message": message}}


def answering(status: int, body: object = None, seen: list[httpx.Request] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return handle


def raising(error: type[httpx.TransportError]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handle


def provider(handler: Handler) -> EvolutionProvider:
    return EvolutionProvider(transport=httpx.MockTransport(handler))


# --- the plug-in -------------------------------------------------------------------------


def test_the_plugin_record() -> None:
    assert (PLUGIN.kind, PLUGIN.title) == ("evolution", "Evolution API")
    assert PLUGIN.default_pace == Pace(rate_per_minute=8, jitter_ms=3000)
    assert PLUGIN.default_max_concurrency == 1
    assert PLUGIN.secret_fields == frozenset({"api_key"})
    assert list(PLUGIN.form_fields) == ["base_url", "instance", "api_key"]
    assert PLUGIN.prepare_session is register_webhook
    assert PLUGIN.summary
    assert "\n" not in PLUGIN.summary
    assert PLUGIN.templates is False
    assert EvolutionProvider.supports_client_message_id is False


# --- status ------------------------------------------------------------------------------


async def test_status_asks_for_the_instances_connection_state_with_the_api_key() -> None:
    seen: list[httpx.Request] = []
    answer = {"instance": {"instanceName": "shop1", "state": "open"}}
    adapter = provider(answering(200, answer, seen))
    status = await adapter.connection_status(REF)
    await adapter.aclose()
    assert (status.state, status.detail) == (ConnectionState.CONNECTED, None)
    (request,) = seen
    assert (request.method, str(request.url)) == (
        "GET",
        f"{BASE_URL}/instance/connectionState/shop1",
    )
    assert request.headers["apikey"] == API_KEY


@pytest.mark.parametrize("state", ["connecting", "close", "refused"])
async def test_an_instance_that_is_not_open_is_disconnected_naming_its_state(state: str) -> None:
    answer = {"instance": {"instanceName": "shop1", "state": state}}
    status = await provider(answering(200, answer)).connection_status(REF)
    assert status.state is ConnectionState.DISCONNECTED
    assert f"'{state}'" in (status.detail or "")


@pytest.mark.parametrize(
    ("http_status", "detail"),
    [(401, "Evolution refused the API key"), (403, "Evolution refused the API key")],
)
async def test_a_refused_api_key_is_disconnected(http_status: int, detail: str) -> None:
    answer = evolution_error(http_status, "Unauthorized")
    status = await provider(answering(http_status, answer)).connection_status(REF)
    assert (status.state, status.detail) == (ConnectionState.DISCONNECTED, detail)


async def test_an_unknown_instance_is_disconnected() -> None:
    answer = evolution_error(404, ['The "shop1" instance does not exist'])
    status = await provider(answering(404, answer)).connection_status(REF)
    assert status.state is ConnectionState.DISCONNECTED
    assert "no such instance" in (status.detail or "")


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (500, evolution_error(500, "boom")),
        (502, b"<html>Bad gateway</html>"),
        (200, {"instance": {"instanceName": "shop1"}}),
        (200, b"not json"),
    ],
)
async def test_an_answer_that_says_nothing_raises(http_status: int, body: object) -> None:
    with pytest.raises(EvolutionError):
        await provider(answering(http_status, body)).connection_status(REF)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout])
async def test_a_network_error_on_status_raises(error: type[httpx.TransportError]) -> None:
    with pytest.raises(error):
        await provider(raising(error)).connection_status(REF)


# --- send --------------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 201])
async def test_a_send_posts_the_digits_and_text_and_keeps_key_id(http_status: int) -> None:
    seen: list[httpx.Request] = []
    answer = {
        "key": {"remoteJid": "972501234567@s.whatsapp.net", "fromMe": True, "id": "3EB0ABC"},
        "status": "PENDING",
    }
    result = await provider(answering(http_status, answer, seen)).send(REF, MESSAGE)
    assert result == SendResult(SendOutcome.SENT, provider_message_id="3EB0ABC")
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/message/sendText/shop1")
    assert request.headers["apikey"] == API_KEY
    assert json.loads(request.content) == {"number": "972501234567", "text": "Hello"}


async def test_a_number_not_on_whatsapp_fails_for_good() -> None:
    result = await provider(answering(400, NOT_ON_WHATSAPP)).send(REF, MESSAGE)
    assert (result.outcome, result.error_code) == (SendOutcome.FAILED, "NOT_ON_WHATSAPP")
    assert "not on WhatsApp" in (result.error_message or "")


@pytest.mark.parametrize(
    ("http_status", "message", "kept"),
    [
        (400, [['instance requires property "text"']], 'instance requires property "text"'),
        (400, ["SessionError: No sessions"], "SessionError: No sessions"),
        (422, "Unprocessable", "Unprocessable"),
    ],
)
async def test_other_4xx_fail_the_recipient_with_evolutions_reason(
    http_status: int, message: object, kept: str
) -> None:
    answer = evolution_error(http_status, message)
    result = await provider(answering(http_status, answer)).send(REF, MESSAGE)
    assert result.outcome is SendOutcome.FAILED
    assert result.error_code == f"EVOLUTION_HTTP_{http_status}"
    assert kept in (result.error_message or "")


async def test_a_missing_instance_holds_the_recipients_and_a_429_is_retried() -> None:
    gone = evolution_error(404, ['The "shop1" instance does not exist'])
    held = await provider(answering(404, gone)).send(REF, MESSAGE)
    assert (held.outcome, held.error_code) == (SendOutcome.DISCONNECTED, "EVOLUTION_HTTP_404")
    assert "no such instance" in (held.error_message or "")
    slow = await provider(answering(429, evolution_error(429, "Too Many"))).send(REF, MESSAGE)
    assert slow.outcome is SendOutcome.RETRY_LATER


@pytest.mark.parametrize("http_status", [401, 403])
async def test_a_refused_api_key_holds_the_recipient(http_status: int) -> None:
    answer = evolution_error(http_status, "Unauthorized")
    result = await provider(answering(http_status, answer)).send(REF, MESSAGE)
    assert result.outcome is SendOutcome.DISCONNECTED
    assert "API key" in (result.error_message or "")


@pytest.mark.parametrize("http_status", [500, 502, 503])
async def test_a_server_error_is_retried_later(http_status: int) -> None:
    result = await provider(answering(http_status, b"<html>oops</html>")).send(REF, MESSAGE)
    assert (result.outcome, result.error_code) == (
        SendOutcome.RETRY_LATER,
        f"EVOLUTION_HTTP_{http_status}",
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx.ConnectError, "CONNECTION_REFUSED"),
        (httpx.ConnectTimeout, "TIMEOUT"),
        (httpx.PoolTimeout, "TIMEOUT"),
    ],
)
async def test_a_request_that_never_left_is_retried_later(
    error: type[httpx.TransportError], code: str
) -> None:
    result = await provider(raising(error)).send(REF, MESSAGE)
    assert (result.outcome, result.error_code) == (SendOutcome.RETRY_LATER, code)


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError]
)
async def test_a_request_that_may_have_left_raises(error: type[httpx.TransportError]) -> None:
    with pytest.raises(error):
        await provider(raising(error)).send(REF, MESSAGE)


@pytest.mark.parametrize("body", [{"status": "PENDING"}, {"key": {"id": ""}}, b"<html>"])
async def test_a_success_without_a_message_id_raises(body: object) -> None:
    with pytest.raises(EvolutionError):
        await provider(answering(201, body)).send(REF, MESSAGE)


async def test_send_many_stops_after_the_session_is_disconnected() -> None:
    answers = iter([(201, {"key": {"id": "A"}}), (401, evolution_error(401, "Unauthorized"))])

    def handle(request: httpx.Request) -> httpx.Response:
        status, body = next(answers)
        return httpx.Response(status, json=body)

    results = await provider(handle).send_many(REF, [MESSAGE, MESSAGE, MESSAGE])
    assert [r.outcome for r in results] == [SendOutcome.SENT, SendOutcome.DISCONNECTED]


def test_secrets_never_reach_an_error_message() -> None:
    answer = evolution_error(400, [f"bad apikey {API_KEY}", f"header {SECRET}"])
    result = classify_error(400, answer, [API_KEY, SECRET])
    assert API_KEY not in (result.error_message or "")
    assert SECRET not in (result.error_message or "")
    assert evolution_text({"error": "x" * 5000}) is not None
    assert len(evolution_text({"error": "x" * 5000}) or "") <= 500


# --- webhook/set -------------------------------------------------------------------------


async def test_prepare_session_registers_the_webhook_in_v2s_shape() -> None:
    seen: list[httpx.Request] = []
    await register_webhook(
        REF, WEBHOOK_URL, transport=httpx.MockTransport(answering(201, {"id": "x"}, seen))
    )
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/webhook/set/shop1")
    assert request.headers["apikey"] == API_KEY
    body: dict[str, Any] = json.loads(request.content)
    assert body == {
        "webhook": {
            "enabled": True,
            "url": WEBHOOK_URL,
            "headers": {"X-Wabroadcast-Webhook-Secret": SECRET},
            "byEvents": False,
            "base64": False,
            "events": ["MESSAGES_UPDATE", "CONNECTION_UPDATE", "MESSAGES_UPSERT"],
        }
    }
    headers = body["webhook"]["headers"]
    assert "jwt_key" not in {name.lower() for name in headers}
    assert API_KEY not in headers.values()


@pytest.mark.parametrize(
    ("http_status", "body", "says"),
    [
        (401, evolution_error(401, "Unauthorized"), "api_key"),
        (403, evolution_error(403, "Forbidden"), "api_key"),
        (404, evolution_error(404, ['The "shop1" instance does not exist']), "'shop1'"),
        (400, evolution_error(400, [["webhook.events[0] is not one of enum"]]), "HTTP 400"),
        (500, b"<html>", "HTTP 500"),
    ],
)
async def test_a_refused_registration_is_a_setup_failure(
    http_status: int, body: object, says: str
) -> None:
    transport = httpx.MockTransport(answering(http_status, body))
    with pytest.raises(ProviderSetupFailed) as failed:
        await register_webhook(REF, WEBHOOK_URL, transport=transport)
    assert says in failed.value.message
    assert "Nothing was saved" in failed.value.message
    assert failed.value.details["http_status"] == http_status
    assert API_KEY not in failed.value.message
    assert SECRET not in failed.value.message


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout])
async def test_an_unreachable_evolution_is_a_setup_failure(
    error: type[httpx.TransportError],
) -> None:
    with pytest.raises(ProviderSetupFailed) as failed:
        await register_webhook(REF, WEBHOOK_URL, transport=httpx.MockTransport(raising(error)))
    assert "base_url" in failed.value.message
    assert failed.value.http_status == 502


async def test_a_secret_that_evolution_echoes_is_blanked() -> None:
    body = evolution_error(400, [f"headers.X-Wabroadcast-Webhook-Secret={SECRET} apikey={API_KEY}"])
    transport = httpx.MockTransport(answering(400, body))
    with pytest.raises(ProviderSetupFailed) as failed:
        await register_webhook(REF, WEBHOOK_URL, transport=transport)
    assert SECRET not in failed.value.message
    assert API_KEY not in failed.value.message
