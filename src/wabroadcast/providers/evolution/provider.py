"""Evolution API v2 as a provider: a self-hosted WhatsApp Web gateway, called over HTTP.

Evolution takes no client message id, so a send is retried only when the
request surely never reached it: a refused connection, or a timeout before a
connection was had. When it may have left (a read timeout, a dropped
connection, a 201 we cannot read), the exception goes up and the dispatcher
records the outcome as unknown rather than risk a duplicate.

Evolution checks that the number is on WhatsApp before it sends (a 400 that
lists ``"exists": false``), so such numbers fail at once with
``NOT_ON_WHATSAPP``. Its sends are slow and paced (8 a minute by default), so
httpx's client is plenty; one per provider instance and event loop.
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
from wabroadcast.providers.evolution.errors import classify_error
from wabroadcast.providers.http_pool import never_left

KIND = "evolution"
# Evolution answers a send after WhatsApp took it, which can take a few seconds.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_CONNECTIONS = 32
# Evolution (Node) closes an idle connection after 5 s; ours go first, so a send never
# lands on a connection the server is closing (which would make its outcome unknown).
KEEPALIVE_EXPIRY_S = 4.0
API_KEY_HEADER = "apikey"
USER_AGENT = "wabroadcast"
MAX_MESSAGE_ID = 128
MAX_STATE = 32
OPEN_STATE = "open"

API_KEY_REFUSED_DETAIL = "Evolution refused the API key"
NO_INSTANCE_DETAIL = "no such instance on the Evolution server"


class EvolutionError(Exception):
    """Evolution answered in a way that says nothing certain (a 5xx status check, a 201
    without a message id)."""


def instance_url(config: Mapping[str, object], action: str) -> str:
    """``{base_url}/{action}/{instance}``, e.g. ``.../message/sendText/shop1``."""
    base_url = str(config["base_url"]).rstrip("/")
    instance = quote(str(config["instance"]), safe="")
    return f"{base_url}/{action}/{instance}"


def api_headers(config: Mapping[str, object]) -> dict[str, str]:
    return {API_KEY_HEADER: str(config["api_key"]), "user-agent": USER_AGENT}


class EvolutionProvider(OneMessagePerRequest):
    """Sends through an Evolution API v2 instance with the session's API key."""

    kind = KIND
    supports_client_message_id = False
    # A WhatsApp Web gateway: sends to numbers not on WhatsApp risk the number.
    checks_numbers_by_default = True

    def __init__(
        self,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max(1, max_connections),
            max_keepalive_connections=max(1, max_connections),
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        self._http = ClientPerLoop(
            lambda: httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)
        )

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        """Ask Evolution for the instance's state: ``open`` means connected.

        Raises on a network error or an answer that says nothing about the
        session (a 5xx, a 200 without a state): the caller then assumes it is
        still connected.
        """
        config = session.config
        response = await self._http().get(
            instance_url(config, "instance/connectionState"), headers=api_headers(config)
        )
        if response.status_code in (401, 403):
            return ConnectionStatus(ConnectionState.DISCONNECTED, API_KEY_REFUSED_DETAIL)
        if response.status_code == 404:
            return ConnectionStatus(ConnectionState.DISCONNECTED, NO_INSTANCE_DETAIL)
        if response.status_code != 200:
            raise EvolutionError(
                f"Evolution answered the status check with HTTP {response.status_code}"
            )
        state = _state(json_or_none(response.content))
        if state is None:
            raise EvolutionError("Evolution answered the status check without a state")
        if state == OPEN_STATE:
            return ConnectionStatus(ConnectionState.CONNECTED)
        return ConnectionStatus(
            ConnectionState.DISCONNECTED,
            f"the Evolution instance is {state!r}, not 'open': pair the phone again "
            "in Evolution's manager",
        )

    async def check_numbers(self, session: SessionRef, phones: Sequence[str]) -> dict[str, bool]:
        """One ``POST /chat/whatsappNumbers/{instance}`` for all the numbers.

        Raises on a network error or an answer other than 2xx: nothing is known
        then. An entry matched to no number asked about is ignored (unknown).
        """
        config = session.config
        by_digits = {phone.removeprefix("+"): phone for phone in phones}
        response = await self._http().post(
            instance_url(config, "chat/whatsappNumbers"),
            json={"numbers": list(by_digits)},
            headers=api_headers(config),
        )
        if not 200 <= response.status_code < 300:
            raise EvolutionError(
                f"Evolution answered the number check with HTTP {response.status_code}"
            )
        document = json_or_none(response.content)
        answers: dict[str, bool] = {}
        for entry in document if isinstance(document, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("exists"), bool):
                continue
            number = entry.get("number")
            jid = entry.get("jid")
            digits = number if isinstance(number, str) else None
            if digits not in by_digits and isinstance(jid, str):
                digits = jid.split("@", 1)[0]
            if digits in by_digits:
                answers[by_digits[digits]] = entry["exists"]
        return answers

    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """Send one text and classify Evolution's answer."""
        config = session.config
        body = {"number": message.to.removeprefix("+"), "text": message.text}
        try:
            response = await self._http().post(
                instance_url(config, "message/sendText"), json=body, headers=api_headers(config)
            )
        except httpx.TransportError as exc:
            if (refused := never_left(exc, "Evolution")) is None:
                raise
            return refused
        document = json_or_none(response.content)
        if 200 <= response.status_code < 300:
            return SendResult(SendOutcome.SENT, provider_message_id=_message_id(response, document))
        return classify_error(response.status_code, document, secret_values(session))

    async def aclose(self) -> None:
        """Close the client's connections (a later call opens a new client)."""
        await self._http.aclose()


def secret_values(session: SessionRef) -> list[str]:
    """Values never to repeat in an error message."""
    return [str(session.config.get("api_key") or ""), session.webhook_secret]


def _state(document: object) -> str | None:
    """``instance.state`` of a connectionState answer, made safe to show; None if absent."""
    instance = document.get("instance") if isinstance(document, dict) else None
    state = instance.get("state") if isinstance(instance, dict) else None
    if not isinstance(state, str) or not state:
        return None
    shown = "".join(c for c in state[:MAX_STATE] if c.isascii() and c.isprintable())
    return shown or None


def _message_id(response: httpx.Response, document: object) -> str:
    """``key.id`` of an accepted send (the WhatsApp id); raises if the answer lacks one."""
    key = document.get("key") if isinstance(document, dict) else None
    message_id = key.get("id") if isinstance(key, dict) else None
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID:
        raise EvolutionError(
            f"Evolution answered HTTP {response.status_code} without a message id; "
            "the message may have been sent"
        )
    return message_id
