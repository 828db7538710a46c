"""Our Baileys gateway (``gateway/``) as a provider: its HTTP API, session by session.

The gateway keeps one WhatsApp Web connection per session (a phone linked by QR
code) and sends with the client message id as Baileys' ``messageId``; a
``message_id`` it already sent is answered with the first result and not sent
again. So a send whose outcome is unknown may be retried with the same id, and
the dispatcher's batch path applies (``supports_client_message_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from wabroadcast.providers.baileys.config import DEFAULT_BASE_URL
from wabroadcast.providers.base import (
    ConnectionState,
    ConnectionStatus,
    LinkState,
    OutgoingMessage,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.common import ClientPerLoop, OneMessagePerRequest

KIND = "baileys"
AUTH_HEADER = "X-Gateway-Token"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Why a session that is not connected cannot send, by the gateway's state.
NOT_CONNECTED_DETAIL = {
    "connecting": "the gateway is connecting to WhatsApp",
    "qr": "waiting for the QR code to be scanned: connect the session and scan it",
    "logged_out": "the phone was unlinked: connect the session and scan a new QR code",
    "closed": "the gateway closed the connection",
}


class GatewayError(Exception):
    """The gateway answered in a way that says nothing certain about the session."""


def _state(document: object) -> LinkState:
    if not isinstance(document, dict):
        raise GatewayError("the gateway's answer is not a session state")
    qr = document.get("qr")
    me = document.get("me")
    state = str(document.get("state") or "closed")
    return LinkState(
        state=state,
        qr_text=str(qr["text"]) if isinstance(qr, dict) and "text" in qr else None,
        qr_png=str(qr["png_data_url"]) if isinstance(qr, dict) and "png_data_url" in qr else None,
        me=str(me["id"]) if isinstance(me, dict) and "id" in me else None,
        detail=None if state == "connected" else NOT_CONNECTED_DETAIL.get(state),
    )


def _answered_state(response: httpx.Response) -> LinkState:
    """The session state a 200 answer carries; any other status says nothing certain."""
    if response.status_code != 200:
        raise GatewayError(f"the gateway answered HTTP {response.status_code}")
    return _state(response.json())


class BaileysProvider(OneMessagePerRequest):
    """Talks to the gateway at the session's ``base_url`` with its ``token``."""

    kind = KIND
    supports_client_message_id = True
    # Sending to numbers not on WhatsApp is reported to get numbers restricted (463).
    checks_numbers_by_default = True

    def __init__(self) -> None:
        self._http = ClientPerLoop(lambda: httpx.AsyncClient(timeout=TIMEOUT))

    @staticmethod
    def _url(session: SessionRef, path: str) -> str:
        base = str(session.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/sessions/{session.session_id}{path}"

    @staticmethod
    def _headers(session: SessionRef) -> Mapping[str, str]:
        return {AUTH_HEADER: str(session.config.get("token") or "")}

    async def _gateway(
        self, session: SessionRef, method: str, path: str, body: object = None
    ) -> httpx.Response:
        """One call about the session; a gateway that cannot be reached says so."""
        try:
            return await self._http().request(
                method, self._url(session, path), headers=self._headers(session), json=body
            )
        except httpx.TransportError as exc:
            base = str(session.config.get("base_url") or DEFAULT_BASE_URL)
            raise GatewayError(
                f"the gateway at {base} could not be reached ({exc or type(exc).__name__}); "
                "is `wabroadcast gateway` running?"
            ) from exc

    async def link_state(self, session: SessionRef) -> LinkState:
        response = await self._gateway(session, "GET", "")
        if response.status_code == 404:
            return LinkState("not_started", detail="not started on the gateway: connect it")
        if response.status_code == 401:
            return LinkState("closed", detail="the gateway refused the token")
        return _answered_state(response)

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        """Connected when the gateway's WhatsApp connection is open; a gateway that does
        not answer raises (the caller then fails open)."""
        link = await self.link_state(session)
        if link.state == "connected":
            return ConnectionStatus(ConnectionState.CONNECTED)
        return ConnectionStatus(ConnectionState.DISCONNECTED, link.detail or link.state)

    async def connect(self, session: SessionRef, webhook_url: str) -> LinkState:
        response = await self._gateway(
            session,
            "POST",
            "/start",
            {"webhook_url": webhook_url, "webhook_secret": session.webhook_secret},
        )
        if response.status_code == 401:
            return LinkState("closed", detail="the gateway refused the token")
        return _answered_state(response)

    async def logout(self, session: SessionRef) -> LinkState:
        response = await self._gateway(session, "POST", "/logout")
        if response.status_code == 404:
            return LinkState("not_started", detail="not started on the gateway")
        return _answered_state(response)

    async def check_numbers(self, session: SessionRef, phones: Sequence[str]) -> dict[str, bool]:
        """One ``POST /sessions/{id}/check`` (Baileys' ``onWhatsApp``) for all the numbers.

        Raises when the gateway cannot be reached or does not answer 200 (a session
        not connected is a 409); the gateway leaves out numbers it cannot tell.
        """
        by_digits = {phone.removeprefix("+"): phone for phone in phones}
        response = await self._gateway(session, "POST", "/check", {"numbers": list(by_digits)})
        if response.status_code != 200:
            raise GatewayError(
                f"the gateway answered the number check with HTTP {response.status_code}"
            )
        document = response.json()
        results = document.get("results") if isinstance(document, dict) else None
        answers: dict[str, bool] = {}
        for entry in results if isinstance(results, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("exists"), bool):
                continue
            phone = by_digits.get(str(entry.get("number")))
            if phone is not None:
                answers[phone] = entry["exists"]
        return answers

    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """One text through the gateway, under the client message id."""
        try:
            response = await self._http().post(
                self._url(session, "/send"),
                headers=self._headers(session),
                json={
                    "to": message.to.removeprefix("+"),
                    "text": message.text,
                    "message_id": message.client_message_id,
                },
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            return SendResult(
                SendOutcome.RETRY_LATER,
                error_code="CONNECTION_REFUSED",
                error_message="The gateway could not be reached; the message did not leave.",
            )
        if response.status_code == 200:
            body = response.json()
            repeated = bool(body.get("repeated")) if isinstance(body, dict) else False
            return SendResult(
                SendOutcome.SENT,
                provider_message_id=message.client_message_id,
                repeated=repeated,
            )
        if response.status_code == 400:
            # The gateway refuses the request itself (a number it cannot address, say):
            # the same message would be refused again.
            return SendResult(
                SendOutcome.FAILED,
                error_code="INVALID_NUMBER",
                error_message=f"The gateway refused the message: {response.text[:200]}",
            )
        if response.status_code in (401, 409):
            return SendResult(
                SendOutcome.DISCONNECTED,
                error_code="SESSION_DISCONNECTED",
                error_message="The WhatsApp session is not connected (see its QR code).",
            )
        # The gateway failed to send (502) or failed itself: the same id is safe to retry.
        return SendResult(
            SendOutcome.RETRY_LATER,
            error_code="SERVER_ERROR",
            error_message=f"The gateway could not send (HTTP {response.status_code}).",
        )

    async def aclose(self) -> None:
        await self._http.aclose()
