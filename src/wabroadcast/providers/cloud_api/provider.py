"""Meta's WhatsApp Cloud API as a provider: Graph API calls over pooled HTTP connections.

Meta has no idempotency key (``biz_opaque_callback_data`` is only echoed in
webhooks), so a send is retried only when the request surely never reached
Meta: a refused connection, or a timeout before a connection was had. When it
may have left (a read timeout, a dropped connection, a 200 we cannot read), the
exception goes up and the dispatcher records the outcome as unknown rather than
risk a duplicate. This module is on the dispatcher's hot path: it builds little
per message and logs nothing.

The calls go over the keep-alive pool of ``providers.http_pool`` (h11 speaking
the HTTP; through httpx's client the HTTP stack took more than half of the
dispatcher's CPU per message). A Graph API reached through a proxy from the
environment (``HTTPS_PROXY``...) is called through httpx, which knows proxies.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import httpx

from wabroadcast.providers.base import (
    ConnectionState,
    ConnectionStatus,
    OutgoingMessage,
    SendOutcome,
    SendResult,
    SessionRef,
)
from wabroadcast.providers.cloud_api.config import DEFAULT_API_VERSION, DEFAULT_GRAPH_BASE_URL
from wabroadcast.providers.cloud_api.errors import TOKEN_REFUSED_CODE, classify_error
from wabroadcast.providers.common import OneMessagePerRequest, json_or_none
from wabroadcast.providers.http_pool import Answer, HttpPool, Origin, never_left

KIND = "cloud_api"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_MAX_CONNECTIONS = 256
# Kept for callers of the httpx-based adapter, which spread sends over this many
# clients; one pool now serves every send, whatever ``clients`` says.
DEFAULT_CLIENTS = 1
# Graph codes for "this object does not exist (for this token)".
NOT_FOUND_CODES = frozenset({100, 803})
USER_AGENT = b"wabroadcast"

ACCESS_REFUSED_DETAIL = "Meta refused the access token (expired, revoked or mistyped)"
NUMBER_NOT_FOUND_DETAIL = "phone number id not found for this token"


class CloudApiError(Exception):
    """Meta answered in a way that says nothing certain (a 5xx status check, a 200 without id)."""


class _Endpoint(NamedTuple):
    """Where one session's calls go: the origin, the request targets and fixed headers."""

    origin: Origin
    messages_target: bytes
    number_target: bytes
    headers: list[tuple[bytes, bytes]]
    url: str  # the Graph root with the phone number id, for httpx (proxied origins)


class CloudApiProvider(OneMessagePerRequest):
    """Sends through Meta's Graph API with the session's phone number id and token."""

    kind = KIND
    supports_client_message_id = False

    def __init__(
        self,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        clients: int = DEFAULT_CLIENTS,
    ) -> None:
        del clients  # one pool for all sends (see DEFAULT_CLIENTS)
        self._timeout = timeout
        self._max_connections = max(1, max_connections)
        self._tls: ssl.SSLContext | None = None
        self._pool: HttpPool | None = None
        self._proxied_client: httpx.AsyncClient | None = None
        self._endpoints: dict[tuple[str, str, str, str], _Endpoint] = {}
        self._proxied: dict[Origin, bool] = {}

    def _connections(self) -> HttpPool:
        """The pool of this event loop (a pool's connections belong to the loop it began in)."""
        pool = self._pool
        if pool is None or pool.loop is not asyncio.get_running_loop():
            self._pool = pool = HttpPool(self._timeout, self._max_connections, self._tls_context())
        return pool

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            # Made once: loading the CA bundle takes tens of milliseconds.
            self._tls = httpx.create_ssl_context()
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls

    def _endpoint(self, config: Mapping[str, object]) -> _Endpoint:
        """The session's endpoint, made on its first call (one per session and token)."""
        key = (
            str(config.get("graph_base_url") or DEFAULT_GRAPH_BASE_URL),
            str(config.get("api_version") or DEFAULT_API_VERSION),
            str(config["phone_number_id"]),
            str(config["access_token"]),
        )
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if len(self._endpoints) >= 100_000:
                self._endpoints.clear()
            endpoint = self._endpoints[key] = _make_endpoint(*key)
        return endpoint

    async def _call(self, endpoint: _Endpoint, body: bytes | None) -> Answer:
        """POST ``body`` to the messages endpoint, or GET the number if None."""
        proxied = self._proxied.get(endpoint.origin)
        if proxied is None:
            proxied = self._proxied[endpoint.origin] = _proxy_applies(endpoint.origin)
        if proxied:
            return await self._call_through_proxy(endpoint, body)
        pool = self._connections()
        if body is None:
            return await pool.request(
                endpoint.origin, b"GET", endpoint.number_target, endpoint.headers
            )
        headers = [
            *endpoint.headers,
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ]
        return await pool.request(endpoint.origin, b"POST", endpoint.messages_target, headers, body)

    async def _call_through_proxy(self, endpoint: _Endpoint, body: bytes | None) -> Answer:
        """The same call through httpx, which reaches the origin through its proxy."""
        if self._proxied_client is None:
            limits = httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            )
            self._proxied_client = httpx.AsyncClient(
                timeout=self._timeout, limits=limits, verify=self._tls_context()
            )
        headers = {
            name.decode(): value.decode() for name, value in endpoint.headers if name != b"host"
        }
        if body is None:
            response = await self._proxied_client.get(endpoint.url, headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            response = await self._proxied_client.post(
                f"{endpoint.url}/messages", content=body, headers=headers
            )
        return Answer(response.status_code, response.content)

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        """Ask Meta for the phone number: readable with this token means connected.

        Raises on a network error or an answer that says nothing about the
        session (a 5xx): the caller then assumes it is still connected.
        """
        response = await self._call(self._endpoint(session.config), None)
        if response.status_code == 200:
            return ConnectionStatus(ConnectionState.CONNECTED)
        code = _error_code(response)
        if response.status_code == 401 or code == TOKEN_REFUSED_CODE:
            return ConnectionStatus(ConnectionState.DISCONNECTED, ACCESS_REFUSED_DETAIL)
        if response.status_code == 404 or code in NOT_FOUND_CODES:
            return ConnectionStatus(ConnectionState.DISCONNECTED, NUMBER_NOT_FOUND_DETAIL)
        raise CloudApiError(
            f"the Graph API answered the status check with HTTP {response.status_code}"
        )

    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """Send one text or template message and classify Meta's answer."""
        payload = _message_payload(message)
        try:
            content = None if payload is None else json.dumps(payload, separators=(",", ":"))
        except (TypeError, ValueError):
            content = None
        if content is None:
            return SendResult(
                SendOutcome.FAILED,
                error_code="TEMPLATE_INVALID",
                error_message=(
                    'The broadcast\'s "template" needs a "name", a "language" code and '
                    '"components" that are plain JSON.'
                ),
            )
        endpoint = self._endpoint(session.config)
        try:
            response = await self._call(endpoint, content.encode())
        except httpx.TransportError as exc:
            if (refused := never_left(exc, "Meta")) is None:
                raise
            return refused
        if 200 <= response.status_code < 300:
            return SendResult(SendOutcome.SENT, provider_message_id=_message_id(response))
        return classify_error(response.status_code, json_or_none(response.content))

    async def aclose(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        client, self._proxied_client = self._proxied_client, None
        if client is not None:
            await client.aclose()


def _make_endpoint(base_url: str, api_version: str, phone_number_id: str, token: str) -> _Endpoint:
    """Where a session's calls go: ``https://graph.facebook.com/v23.0/<number>``..."""
    url = f"{base_url.rstrip('/')}/{api_version}/{phone_number_id}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise httpx.UnsupportedProtocol(f"the Graph API URL {base_url!r} is not http(s)")
    default_port = 443 if scheme == "https" else 80
    port = parts.port or default_port
    authority = f"[{host}]" if ":" in host else host
    if port != default_port:
        authority = f"{authority}:{port}"
    target = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    headers = [
        (b"host", authority.encode("idna" if not authority.isascii() else "ascii")),
        (b"user-agent", USER_AGENT),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"identity"),
        (b"authorization", f"Bearer {token}".encode("ascii")),
    ]
    return _Endpoint(
        Origin(scheme, host, port),
        f"{target}/messages".encode("ascii"),
        target.encode("ascii"),
        headers,
        url,
    )


def _proxy_applies(origin: Origin) -> bool:
    """Whether the environment sends calls to ``origin`` through a proxy (as httpx does)."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(origin.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(origin.host)


def _message_payload(message: OutgoingMessage) -> dict[str, object] | None:
    """The Graph API body for one message; None if its template lacks a name or language."""
    payload: dict[str, object] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to.removeprefix("+"),
        "biz_opaque_callback_data": message.client_message_id,
    }
    template = message.template
    if template is None:
        payload["type"] = "text"
        payload["text"] = {"preview_url": False, "body": message.text}
        return payload
    name = template.get("name")
    language = template.get("language")
    if isinstance(language, Mapping):
        language = language.get("code")
    if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
        return None
    body: dict[str, object] = {"name": name, "language": {"code": language}}
    components = template.get("components")
    if components is not None:
        body["components"] = components
    payload["type"] = "template"
    payload["template"] = body
    return payload


def _message_id(response: Answer) -> str:
    """The wamid of an accepted send; raises if the 200 does not carry one."""
    document = json_or_none(response.content)
    messages = document.get("messages") if isinstance(document, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    message_id = first.get("id") if isinstance(first, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise CloudApiError(
            f"Meta answered HTTP {response.status_code} without a message id; "
            "the message may have been sent"
        )
    return message_id


def _error_code(response: Answer) -> int | None:
    """The Graph error code of an error answer, if it has one."""
    document = json_or_none(response.content)
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None
