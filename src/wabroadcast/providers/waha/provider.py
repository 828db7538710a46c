"""WAHA (WhatsApp HTTP API) as a provider: a self-hosted WhatsApp Web gateway over HTTP.

Each send is two calls: ``GET /api/contacts/check-exists`` first, because WAHA
accepts a message to a number that is not on WhatsApp (201, then it is never
delivered), then ``POST /api/sendText``; the first is left out when the
dispatcher's number check (cached 30 days) already found the number on
WhatsApp. WAHA takes no client message id, so a send is retried only when the
request surely never reached WAHA: a refused connection, a connect timeout, a
5xx. When it may have left (a read timeout, a dropped connection, a 2xx without
a message id) the exception goes up and the dispatcher records the outcome as
unknown rather than risk a duplicate.

The message id kept is the long form WAHA's ``message.ack`` webhooks carry,
``true_<digits>@c.us_<raw id>``: the GOWS engine answers it as ``id``, the
NOWEB engine answers the raw Baileys message, whose ``key.id`` is the raw id.
A WAHA session sends a few messages a minute, so one ``httpx`` client is plenty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx

from wabroadcast.providers.base import (
    ConnectionState,
    ConnectionStatus,
    OutgoingMessage,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.common import ClientPerLoop, OneMessagePerRequest, json_or_none
from wabroadcast.providers.http_pool import never_left
from wabroadcast.providers.waha.config import DEFAULT_SESSION
from wabroadcast.providers.waha.errors import (
    NOT_ON_WHATSAPP,
    NOT_ON_WHATSAPP_MESSAGE,
    WORKING,
    classify_check_error,
    classify_send_error,
    clean,
)

KIND = "waha"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
API_KEY_HEADER = "X-Api-Key"
USER_AGENT = "wabroadcast"
# Longest raw message id accepted from WAHA (Baileys' are 20 to 32 characters).
MAX_RAW_ID = 64
MAX_MESSAGE_ID = 128
MAX_STATUS_NAME = 40

API_KEY_REFUSED_DETAIL = "WAHA refused the API key"
NO_SUCH_SESSION_DETAIL = "no such WAHA session"


class WahaError(Exception):
    """WAHA answered in a way that says nothing certain (a 5xx status check, a 2xx without id)."""


def chat_id(phone: str) -> str | None:
    """WAHA's chat id of an E.164 number (``+972501234567`` -> ``972501234567@c.us``)."""
    digits = phone.removeprefix("+")
    if not (digits.isascii() and digits.isdigit() and 0 < len(digits) <= 20):
        return None
    return f"{digits}@c.us"


def long_message_id(document: object, chat: str) -> str | None:
    """The ``true_<chat>_<raw>`` id of a sent message, from WAHA's answer to ``sendText``.

    A top-level ``id`` already in that form (GOWS; WEBJS nests it as
    ``id._serialized``) is taken as it is; otherwise the raw id (NOWEB's
    ``key.id``, or a bare top-level ``id``) is put in the long form with the
    chat id sent to. None when the answer carries no usable id.
    """
    if not isinstance(document, Mapping):
        return None
    top = document.get("id")
    if isinstance(top, Mapping):
        top = top.get("_serialized")
    if isinstance(top, str) and _is_long_form(top):
        return top
    key = document.get("key")
    raw = key.get("id") if isinstance(key, Mapping) else None
    if not _is_raw_id(raw) and _is_raw_id(top):
        raw = top
    if _is_raw_id(raw):
        return f"true_{chat}_{raw}"
    return None


def _is_long_form(value: str) -> bool:
    if not (value.startswith("true_") and len(value) <= MAX_MESSAGE_ID and value.isascii()):
        return False
    _, chat, raw = value.split("_", 2) if value.count("_") >= 2 else ("", "", "")
    return bool(chat) and "@" in chat and _is_raw_id(raw.split("_", 1)[0])


def _is_raw_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_RAW_ID
        and value.isascii()
        and value.isalnum()
    )


class WahaProvider(OneMessagePerRequest):
    """Sends through a WAHA server with the session's URL, API key and session name."""

    kind = KIND
    supports_client_message_id = False
    # WAHA sends to numbers not on WhatsApp without a word (201, never delivered).
    checks_numbers_by_default = True

    def __init__(self, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self._http = ClientPerLoop(
            lambda: httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})
        )

    @staticmethod
    def _where(config: Mapping[str, object]) -> tuple[str, str, dict[str, str]]:
        """The session's base URL, WAHA session name and headers."""
        base_url = str(config["base_url"]).rstrip("/")
        session = str(config.get("session") or DEFAULT_SESSION)
        headers = {API_KEY_HEADER: str(config["api_key"]), "Accept": "application/json"}
        return base_url, session, headers

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        """Ask WAHA for the session: ``WORKING`` means connected, any other status not.

        Raises on a network error or an answer that says nothing about the
        session (a 5xx, a 429, a 200 that is not a session): the caller then
        assumes it is still connected.
        """
        base_url, name, headers = self._where(session.config)
        response = await self._http().get(
            f"{base_url}/api/sessions/{quote(name, safe='')}", headers=headers
        )
        code = response.status_code
        if code == 200:
            document = json_or_none(response.content)
            status = document.get("status") if isinstance(document, Mapping) else None
            if not isinstance(status, str):
                raise WahaError("WAHA answered the status check without a session status")
            if status == WORKING:
                return ConnectionStatus(ConnectionState.CONNECTED)
            named = clean(status)[:MAX_STATUS_NAME] or "unknown"
            return ConnectionStatus(ConnectionState.DISCONNECTED, f"WAHA session status {named}")
        if code in (401, 403):
            return ConnectionStatus(ConnectionState.DISCONNECTED, API_KEY_REFUSED_DETAIL)
        if code == 404:
            return ConnectionStatus(ConnectionState.DISCONNECTED, NO_SUCH_SESSION_DETAIL)
        if code >= 500 or code == 429 or code < 400:
            raise WahaError(f"WAHA answered the status check with HTTP {code}")
        # Another refusal (WAHA Core's 422 for a session other than "default").
        return ConnectionStatus(
            ConnectionState.DISCONNECTED, f"WAHA refused the status check (HTTP {code})"
        )

    async def check_numbers(self, session: SessionRef, phones: Sequence[str]) -> dict[str, bool]:
        """``check-exists`` for each number in turn (WAHA asks about one at a time).

        Raises on a network error or an answer that is not 200 (a session not
        WORKING, a 5xx): nothing is known then. A number that is not E.164, or an
        answer without ``numberExists``, is left out (unknown).
        """
        base_url, name, headers = self._where(session.config)
        answers: dict[str, bool] = {}
        for phone in phones:
            chat = chat_id(phone)
            if chat is None:
                continue
            response = await self._http().get(
                f"{base_url}/api/contacts/check-exists",
                params={"phone": chat.removesuffix("@c.us"), "session": name},
                headers=headers,
            )
            if response.status_code != 200:
                raise WahaError(f"WAHA answered the number check with HTTP {response.status_code}")
            document = json_or_none(response.content)
            exists = document.get("numberExists") if isinstance(document, Mapping) else None
            if isinstance(exists, bool):
                answers[phone] = exists
        return answers

    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """Check the number is on WhatsApp (unless the dispatcher just did), then send the
        text, and classify WAHA's answers."""
        chat = chat_id(message.to)
        if chat is None:
            return SendResult(
                SendOutcome.FAILED,
                error_code="INVALID_NUMBER",
                error_message="The number is not an E.164 phone number; nothing was sent.",
            )
        base_url, name, headers = self._where(session.config)
        if not message.on_whatsapp:
            checked = await self._check_exists(base_url, name, headers, chat)
            if checked is not None:
                return checked
        body = {"session": name, "chatId": chat, "text": message.text}
        try:
            response = await self._http().post(
                f"{base_url}/api/sendText", json=body, headers=headers
            )
        except httpx.TransportError as exc:
            if (refused := never_left(exc, "WAHA")) is None:
                raise
            return refused
        if 200 <= response.status_code < 300:
            message_id = long_message_id(json_or_none(response.content), chat)
            if message_id is None:
                raise WahaError(
                    f"WAHA answered HTTP {response.status_code} without a message id; "
                    "the message may have been sent"
                )
            return SendResult(SendOutcome.SENT, provider_message_id=message_id)
        return classify_send_error(response.status_code, json_or_none(response.content))

    async def _check_exists(
        self, base_url: str, name: str, headers: Mapping[str, str], chat: str
    ) -> SendResult | None:
        """None when WAHA says the number is on WhatsApp; else the recipient's result.

        Nothing has been sent yet, so any failure of the check is safe to retry.
        """
        try:
            response = await self._http().get(
                f"{base_url}/api/contacts/check-exists",
                params={"phone": chat.removesuffix("@c.us"), "session": name},
                headers=headers,
            )
        except httpx.TransportError as exc:
            return SendResult(
                SendOutcome.RETRY_LATER,
                error_code="CHECK_UNREACHABLE",
                error_message=(
                    f"WAHA could not be reached to check the number ({type(exc).__name__}); "
                    "nothing was sent and it will be retried later."
                ),
            )
        document = json_or_none(response.content)
        if response.status_code != 200:
            return classify_check_error(response.status_code, document)
        exists = document.get("numberExists") if isinstance(document, Mapping) else None
        if exists is True:
            return None
        if exists is False:
            return SendResult(
                SendOutcome.FAILED,
                error_code=NOT_ON_WHATSAPP,
                error_message=NOT_ON_WHATSAPP_MESSAGE,
            )
        return SendResult(
            SendOutcome.RETRY_LATER,
            error_code="CHECK_UNREADABLE",
            error_message=(
                "WAHA's answer to the number check has no numberExists; "
                "nothing was sent and it will be retried later."
            ),
        )

    async def aclose(self) -> None:
        """Close the client (a later call opens a new one)."""
        await self._http.aclose()
