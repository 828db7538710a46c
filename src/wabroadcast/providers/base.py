"""The one protocol every WhatsApp provider implements, and the values it speaks.

Providers differ in endpoints, status names and error codes (Baileys 0-5,
Evolution strings, WAHA -1..4, Meta strings); each module maps its own to these
types so the broadcast and dispatch code never learns a provider's dialect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable


class ConnectionState(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class SessionRef:
    """What a provider needs to know about the session it acts for.

    ``config`` is the session's provider config with its secrets decrypted (the
    provider's config model, dumped); ``webhook_secret`` is the random secret
    wabroadcast generated for the session (providers that sign with a secret of
    their own, like Meta's app secret, keep it in ``config``).
    """

    session_id: str
    tenant_id: int
    provider: str
    config: Mapping[str, object]
    webhook_secret: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    state: ConnectionState
    detail: str | None = None

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED


class SendOutcome(StrEnum):
    """How the dispatcher must treat the result of one send."""

    SENT = "sent"
    # Not sent, for a reason that passes (timeout before the request left,
    # refused connection, 429, 5xx): try again later, within the attempt limit.
    RETRY_LATER = "retry_later"
    # Will never succeed for this recipient (invalid number, not on WhatsApp).
    FAILED = "failed"
    # The session is not connected: hold the recipient, do not spend an attempt.
    DISCONNECTED = "disconnected"
    # The account itself is restricted or flagged: pause, sending more makes it worse.
    ACCOUNT_BLOCKED = "account_blocked"


class OutgoingMessage(NamedTuple):
    """One message to one E.164 number, under the id that makes a repeat harmless.

    ``text`` is the broadcast's message (for a personal message, the recipient's own
    text); ``template`` (``{"name", "language",
    "components"?}``), when the broadcast carries one, is what a provider that has
    templates (the Cloud API) sends instead. This and ``SendResult`` are named
    tuples, not frozen dataclasses: one of each is made per message sent, and a
    frozen dataclass takes four times as long to build.
    """

    to: str
    text: str
    client_message_id: str
    template: Mapping[str, object] | None = None
    # The dispatcher's number check (``NumberChecker``) found ``to`` on WhatsApp lately:
    # a provider that checks before each send need not ask again.
    on_whatsapp: bool = False


class SendResult(NamedTuple):
    outcome: SendOutcome
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    repeated: bool = False


# Told a result of a ``send_many`` call before the call ends: (position, result).
ResultCallback = Callable[[int, SendResult], None]
# Asked by a ``send_many`` call that has sent all its messages: more to send in the
# same call, which take the next positions (none: the call ends).
MoreMessages = Callable[[], Sequence[OutgoingMessage]]


class ReceiptStatus(StrEnum):
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_message_id: str
    status: ReceiptStatus
    at: datetime
    error_code: str | None = None
    error_message: str | None = None
    # The failure says the account itself is restricted (Baileys' 463): pause the
    # session's broadcasts, as an account-level send error does.
    account_blocked: bool = False


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message someone sent to the session's number (kept for replies and opt-outs)."""

    provider_message_id: str
    from_phone: str
    text: str | None
    at: datetime


class WebhookRejected(Exception):
    """A webhook call that is forged or malformed; nothing may be written for it."""


class WebhookSignatureInvalid(WebhookRejected):
    """The signature is missing, not the session's, or does not match the body (401)."""


class WebhookBodyInvalid(WebhookRejected):
    """The body is correctly signed but is not a receipts document (400)."""


@dataclass(frozen=True, slots=True)
class LinkState:
    """Where linking a phone to a session stands (providers that link by QR code)."""

    # connected | connecting | qr | logged_out | closed | not_started
    state: str
    qr_text: str | None = None
    # The QR code as a PNG data URL, ready for an <img>.
    qr_png: str | None = None
    me: str | None = None
    detail: str | None = None


@runtime_checkable
class Linkable(Protocol):
    """A provider whose sessions a person links by scanning a QR code (the Baileys gateway)."""

    async def connect(self, session: SessionRef, webhook_url: str) -> LinkState:
        """Start the session (telling the provider where to call back); its state now."""
        ...

    async def link_state(self, session: SessionRef) -> LinkState:
        """The session's state now, with the QR code while one is waiting to be scanned."""
        ...

    async def logout(self, session: SessionRef) -> LinkState:
        """Unlink the phone; a new QR code is needed to link it again."""
        ...


@runtime_checkable
class NumberChecker(Protocol):
    """A provider that can tell whether numbers are on WhatsApp without sending to them.

    Sending to numbers that are not on WhatsApp is what gets WhatsApp Web numbers
    restricted (Baileys' 463), so the dispatcher asks first, for the numbers it is
    about to send to, unless the session's ``check_numbers`` says otherwise.
    """

    # Whether a session checks numbers when its ``check_numbers`` setting is unset.
    checks_numbers_by_default: bool

    async def check_numbers(self, session: SessionRef, phones: Sequence[str]) -> dict[str, bool]:
        """Which of the E.164 ``phones`` are on WhatsApp (True) or not (False).

        A phone missing from the answer is unknown, and is sent to as if unchecked.
        Raises when the provider could not be asked (unreachable, a 5xx, a session
        that is not connected): the caller then sends without the check.
        """
        ...


class Provider(Protocol):
    """A WhatsApp gateway as the rest of wabroadcast sees it."""

    kind: str
    # True when a repeated client message id is recognised and not delivered
    # twice; then a crashed send may be retried with the same id.
    supports_client_message_id: bool

    async def connection_status(self, session: SessionRef) -> ConnectionStatus:
        """Whether the session can send right now, as the provider reports it."""
        ...

    async def send(self, session: SessionRef, message: OutgoingMessage) -> SendResult:
        """Send one message to an E.164 number and classify the result."""
        ...

    async def send_many(
        self,
        session: SessionRef,
        messages: Sequence[OutgoingMessage],
        on_result: ResultCallback | None = None,
        more: MoreMessages | None = None,
    ) -> list[SendResult]:
        """Send the messages one after another, as ``send`` would, in one call.

        Returns one result per message attempted, in order; it stops after the
        first ``DISCONNECTED`` or ``ACCOUNT_BLOCKED`` result, so the list may be
        shorter than ``messages``: the rest were not attempted. Only used with
        providers that support client message ids, where a call cut short by a
        crash is safely retried with the same ids.

        ``on_result(position, result)``, if given, may be called during the call
        with results already known, so a long call's results need not wait for
        its end; each such result is also in the returned list.

        ``more()``, if given, may be called once the call has sent all it has; the
        messages it returns go out next in the same call, as if they had been
        given at the start (so a caller with more work never waits for a call to
        end and a new one to begin). A provider may also never call it.
        """
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (HTTP connection pools); called at shutdown."""
        ...


@dataclass(frozen=True, slots=True)
class Pace:
    """Messages per minute (0 = unpaced) and the random extra gap added to each."""

    rate_per_minute: float
    jitter_ms: int

    @property
    def paced(self) -> bool:
        return self.rate_per_minute > 0

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=60.0 / self.rate_per_minute)


# Outcomes after which a provider call sends nothing more: the next sends would fare no better.
STOPS_THE_CALL = frozenset({SendOutcome.DISCONNECTED, SendOutcome.ACCOUNT_BLOCKED})


async def send_each(
    send: Callable[[SessionRef, OutgoingMessage], Awaitable[SendResult]],
    session: SessionRef,
    messages: Sequence[OutgoingMessage],
    on_result: ResultCallback | None = None,
    more: MoreMessages | None = None,
) -> list[SendResult]:
    """``Provider.send_many`` for a provider that sends one message per request: each in
    turn with ``send``, then any ``more`` gives; it stops after one that disconnects or
    blocks the session, and tells ``on_result`` each result as it comes."""
    results: list[SendResult] = []
    batch: Sequence[OutgoingMessage] = messages
    while batch:
        for message in batch:
            result = await send(session, message)
            if on_result is not None:
                on_result(len(results), result)
            results.append(result)
            if result.outcome in STOPS_THE_CALL:
                return results
        batch = more() if more is not None else ()
    return results
