"""What several provider packages do alike, written once.

Mechanisms, not a provider's facts: a provider's endpoints, header names, error
tables, guidance sentences and limits stay in its own package, which passes them
in. The exceptions are facts more than one provider shares as such: wabroadcast's
own webhook scheme (the simulator's, which our Baileys gateway speaks too), the
WhatsApp Web gateways' pace and the range of believable receipt times. This module
imports no provider package; each may import it (none may import another).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import SplitResult, urlsplit

import httpx

from wabroadcast.domain.daily_caps import Preset
from wabroadcast.providers.base import (
    MoreMessages,
    OutgoingMessage,
    Pace,
    ResultCallback,
    SendOutcome,
    SendResult,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
    send_each,
)

# Receipt and webhook times outside these years are not a provider's: the body is refused.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
EARLIEST_EPOCH = int(EARLIEST_TIME.timestamp())
LATEST_EPOCH = int(LATEST_TIME.timestamp())
# The pace of a WhatsApp Web gateway (a phone linked by QR code): the anti-ban numbers
# users report, about 8 messages a minute with seconds of jitter.
WHATSAPP_WEB_PACE = Pace(rate_per_minute=8, jitter_ms=3000)
# Their daily cap: users report restrictions after tens of messages a day to new
# contacts, so a new number starts at 20 a day and grows by 1.85 a day for a week
# (20, 37, 68, 126, 234, 433, 801), then 1,500 (the baileys-antiban defaults).
WHATSAPP_WEB_CAPS = Preset(daily_cap=1_500, warmup_days=7, warmup_start_cap=20, warmup_growth=1.85)
# Printable ASCII without spaces: what may go into an HTTP header as it is (API keys).
HEADER_SAFE_PATTERN = r"^[\x21-\x7e]+$"


# -- sending ------------------------------------------------------------------------------


class OneMessagePerRequest(ABC):
    """A provider whose API sends one message per request: ``send_many`` is ``send_each``."""

    @abstractmethod
    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """Send one message to an E.164 number and classify the result."""

    async def send_many(
        self,
        session: SessionRef,
        messages: Sequence[OutgoingMessage],
        on_result: ResultCallback | None = None,
        more: MoreMessages | None = None,
    ) -> list[SendResult]:
        """One after another (``send_each``): this API sends one message per request."""
        return await send_each(self.send, session, messages, on_result, more)


class ClientPerLoop:
    """A provider's ``httpx`` client, made on first use in each event loop.

    A client's connections belong to the loop they began in, so a call from another
    loop gets a new client. ``aclose`` closes the client of the running loop; one of
    another (finished) loop cannot be closed from this one and is dropped.
    """

    __slots__ = ("_client", "_loop", "_make")

    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self._make = make
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> httpx.AsyncClient:
        """The client of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._client
        if client is None or self._loop is not loop:
            client = self._client = self._make()
            self._loop = loop
        return client

    async def aclose(self) -> None:
        """Close the client (a later call opens a new one)."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()


def json_or_none(content: bytes) -> object:
    """An answer's body as JSON, or None when it is not JSON."""
    try:
        document: object = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return document


# -- a provider's words in error messages -------------------------------------------------


def one_line(text: str) -> str:
    """Text made safe to store and show: one line, no control characters, single spaces."""
    printable = "".join(character if character.isprintable() else " " for character in text)
    return " ".join(printable.split())


def bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending ``...`` when it was cut."""
    if len(text) > limit:
        return text[: limit - 3].rstrip() + "..."
    return text


def clean(text: str, limit: int) -> str:
    """A provider's text made safe to store and show: ``one_line``, then ``bounded``."""
    return bounded(one_line(text), limit)


def compose(their_text: str | None, guidance: str) -> str:
    """The provider's text, then ours: ``"Unauthorized. <our guidance>"``."""
    if not their_text:
        return guidance
    separator = " " if their_text.endswith((".", "!", "?")) else ". "
    return f"{their_text}{separator}{guidance}"


def explained(
    outcome: SendOutcome, error_code: str, their_text: str | None, guidance: str
) -> SendResult:
    """A refused send's result: the provider's text, then ours (``compose``)."""
    return SendResult(outcome, error_code=error_code, error_message=compose(their_text, guidance))


def by_http_status(
    http_status: int,
    error_code: str,
    their_text: str | None,
    *,
    server_error: str,
    rate_limited: str | None,
    refused: str,
) -> SendResult:
    """A refused send once a provider's own rules have had their say: a 5xx is retried
    later (``server_error``), so is a 429 when ``rate_limited`` is given, and anything
    else fails the recipient (``refused``)."""
    if http_status >= 500:
        return explained(SendOutcome.RETRY_LATER, error_code, their_text, server_error)
    if http_status == 429 and rate_limited is not None:
        return explained(SendOutcome.RETRY_LATER, error_code, their_text, rate_limited)
    return explained(SendOutcome.FAILED, error_code, their_text, refused)


# -- webhooks -----------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever the case of its name, from any mapping (Starlette's or
    a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def hmac_hex(key: str, body: bytes, digest: str) -> str:
    """The hex HMAC of ``body`` keyed with ``key`` (UTF-8), with ``digest`` ("sha256"...)."""
    return hmac.new(key.encode("utf-8"), body, digest).hexdigest()


def sha256_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``, the form Meta's and our own signatures take."""
    return "sha256=" + hmac_hex(secret, body, "sha256")


def same_secret(offered: str, expected: str) -> bool:
    """Whether a header carries ``expected`` (a signature or a secret), compared in
    constant time; a header that is not ASCII is a mismatch, not an error."""
    try:
        offered_bytes = offered.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(offered_bytes, expected.encode("utf-8"))


def webhook_json(body: bytes) -> object:
    """An authenticated webhook body as JSON; ``WebhookBodyInvalid`` (400) if it is not JSON."""
    try:
        document: object = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookBodyInvalid("the body is not JSON") from None
    return document


def webhook_object(body: bytes) -> dict[str, object]:
    """An authenticated webhook body as a JSON object; ``WebhookBodyInvalid`` (400) if not."""
    document = webhook_json(body)
    if not isinstance(document, dict):
        raise WebhookBodyInvalid("the body is not a JSON object")
    return document


def webhook_message_id(
    item: Mapping[str, object], key: str, max_length: int, what: str, whose: str
) -> str:
    """``item[key]``, a message id: a string of 1 to ``max_length`` characters once its
    NULs are removed (PostgreSQL text cannot hold them). ``WebhookBodyInvalid`` otherwise,
    saying ``what`` has no such key, or that ``whose`` key is not of that length."""
    message_id = item.get(key)
    if not isinstance(message_id, str):
        raise WebhookBodyInvalid(f'{what} has no "{key}"')
    message_id = message_id.replace("\x00", "")
    if not 1 <= len(message_id) <= max_length:
        raise WebhookBodyInvalid(f'{whose} "{key}" is not 1 to {max_length} characters')
    return message_id


def routing_key_from_path(
    headers: Mapping[str, str], body: bytes, path_key: str | None
) -> list[str]:
    """The session a per-session URL names: its last segment; none without one."""
    return [path_key] if path_key else []


def keyed_by_session_id(session_id: str, config: Mapping[str, object]) -> str:
    """A plug-in's ``webhook_key`` when a session's webhooks are routed by its own id."""
    return session_id


def epoch_number(value: object, max_digits: int = 16) -> int | None:
    """An epoch number given as an integer or a string of at most ``max_digits``
    digits; None when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= max_digits:
        return int(value)
    return None


# -- wabroadcast's own webhook scheme: the simulator's, and our Baileys gateway's ----------

OWN_SESSION_HEADER = "X-Wabroadcast-Session"
OWN_SIGNATURE_HEADER = "X-Wabroadcast-Signature"


def own_session_id(headers: Mapping[str, str]) -> str | None:
    """The session a call names in ``X-Wabroadcast-Session``; None when absent or empty."""
    value = header(headers, OWN_SESSION_HEADER)
    if value is None or not value.strip():
        return None
    return value.strip()


def own_routing_keys(headers: Mapping[str, str], body: bytes, path_key: str | None) -> list[str]:
    """The session a call names in its header (such a session's webhook key is its id)."""
    session_id = own_session_id(headers)
    return [] if session_id is None else [session_id]


def check_own_signature(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``WebhookSignatureInvalid`` unless ``X-Wabroadcast-Signature`` is
    ``sha256=<hex HMAC-SHA256 of body, keyed with secret>``."""
    given = header(headers, OWN_SIGNATURE_HEADER)
    if given is None:
        raise WebhookSignatureInvalid(f"missing {OWN_SIGNATURE_HEADER} header")
    if not same_secret(given.strip(), sha256_signature(secret, body)):
        raise WebhookSignatureInvalid("signature does not match the body")


# -- config -------------------------------------------------------------------------------


def http_url_parts(value: str, what: str, *, check_port: bool = True) -> SplitResult:
    """The parts of an http(s) URL with a host, or ``ValueError`` naming ``what`` (never
    the value: a URL may carry secrets); the caller adds its own further checks."""
    if any(character.isspace() or not character.isprintable() for character in value):
        raise ValueError(f"{what} must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        if check_port:
            parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"{what} is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{what} must start with http:// or https:// and name a host")
    return parts


def no_query(parts: SplitResult, what: str) -> None:
    """``ValueError`` naming ``what`` if the URL has a query or a fragment."""
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or a fragment")
