"""Evolution's webhooks: whose they are, whether they carry the session's secret, what
they report.

Pure functions, no I/O, so every rule is unit-tested. Evolution signs nothing:
each session has its own URL (``/api/whatsapp/webhooks/evolution/<session id>``,
the routing key) and wabroadcast registered a header with the session's random
webhook secret, which Evolution sends on every call. The header is checked,
in constant time, before the body is even parsed. Once authenticated the body
is parsed strictly: a body that is not an Evolution envelope is refused (400)
rather than half-applied.

Receipts come as ``messages.update`` events, keyed by ``data.keyId`` (the
WhatsApp id that the send answered as ``key.id``; ``data.messageId`` is
Evolution's own row id, and ``data.remoteJid`` may be a ``@lid``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.common import (
    EARLIEST_TIME,
    LATEST_TIME,
    epoch_number,
    header,
    routing_key_from_path,
    same_secret,
    webhook_message_id,
    webhook_object,
)

SECRET_HEADER = "X-Wabroadcast-Webhook-Secret"  # noqa: S105 - a header name
RECEIPTS_EVENT = "messages.update"
MAX_MESSAGE_ID = 128
# A call may carry a list of updates; more than this is not Evolution's.
MAX_ITEMS = 1000
FAILED_CODE = "EVOLUTION_ERROR"
FAILED_MESSAGE = (
    "Evolution reported the message as failed (status ERROR); WhatsApp gives no reason."
)

# Evolution's status -> our receipt; PENDING and SERVER_ACK (sent) and DELETED report
# nothing we track.
RECEIPT_STATUSES = {
    "DELIVERY_ACK": ReceiptStatus.DELIVERED,
    "READ": ReceiptStatus.READ,
    "PLAYED": ReceiptStatus.READ,
    "ERROR": ReceiptStatus.FAILED,
}

# The session a call names: its URL's last segment (an Evolution session's webhook key
# is its id); none without one.
routing_keys = routing_key_from_path


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """Authenticate a webhook call as this session's and return its receipts.

    Raises ``WebhookSignatureInvalid`` when the secret header is missing or
    wrong, ``WebhookBodyInvalid`` when the authenticated body is not an
    Evolution envelope. Events other than ``messages.update`` are accepted and
    report nothing, as do updates of another instance or of incoming messages.
    """
    check_secret(session, headers)
    document = webhook_object(body)
    event = document.get("event")
    if not isinstance(event, str):
        raise WebhookBodyInvalid('"event" is not a string')
    if _event_name(event) != RECEIPTS_EVENT:
        return []
    instance = document.get("instance")
    expected = session.config.get("instance")
    if isinstance(instance, str) and isinstance(expected, str) and instance != expected:
        return []  # another instance still posting here (the session's instance changed)
    data = document.get("data")
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_ITEMS:
        raise WebhookBodyInvalid(f'"data" has more than {MAX_ITEMS} updates')
    envelope_time = _envelope_time(document.get("date_time"))
    receipts: list[Receipt] = []
    for item in items:
        receipt = _receipt(item, envelope_time)
        if receipt is not None:
            receipts.append(receipt)
    return receipts


def check_secret(session: SessionRef, headers: Mapping[str, str]) -> None:
    """Raise ``WebhookSignatureInvalid`` unless the call carries the session's secret."""
    secret = session.webhook_secret
    if not secret:
        raise WebhookSignatureInvalid("the session has no webhook secret to check calls with")
    received = header(headers, SECRET_HEADER.lower())
    if received is None:
        raise WebhookSignatureInvalid(f"the {SECRET_HEADER} header is missing")
    if not same_secret(received, secret):
        raise WebhookSignatureInvalid(f"the {SECRET_HEADER} header does not match")


def _event_name(event: str) -> str:
    """``messages.update`` whether Evolution names it so or ``MESSAGES_UPDATE``."""
    return event.strip().lower().replace("_", ".")


def _receipt(item: object, envelope_time: datetime | None) -> Receipt | None:
    """The receipt one update reports; None for statuses we do not track and for
    updates of messages we did not send."""
    if not isinstance(item, dict):
        raise WebhookBodyInvalid('"data" is not an object or a list of objects')
    if item.get("fromMe") is False:
        return None  # an incoming message's status, not one of ours
    status = item.get("status")
    if not isinstance(status, str):
        raise WebhookBodyInvalid('an update has no "status"')
    receipt_status = RECEIPT_STATUSES.get(status.upper())
    if receipt_status is None:
        return None
    message_id = webhook_message_id(item, "keyId", MAX_MESSAGE_ID, "an update", "an update's")
    at = envelope_time or _item_time(item) or datetime.now(UTC)
    if receipt_status is ReceiptStatus.FAILED:
        return Receipt(message_id, receipt_status, at, FAILED_CODE, FAILED_MESSAGE)
    return Receipt(message_id, receipt_status, at)


def _envelope_time(value: object) -> datetime | None:
    """The envelope's ``date_time`` (ISO 8601, ``Z`` or an offset; naive is UTC)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise WebhookBodyInvalid('"date_time" is not an ISO 8601 time')
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise WebhookBodyInvalid('"date_time" is not an ISO 8601 time') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise WebhookBodyInvalid('"date_time" is out of range') from None
    return _in_range(parsed, '"date_time"')


def _item_time(item: Mapping[str, object]) -> datetime | None:
    """An update's own time, when it has one (epoch seconds or milliseconds)."""
    for name in ("messageTimestamp", "timestamp"):
        value = item.get(name)
        if value is None:
            continue
        number = epoch_number(value)
        if number is None:
            raise WebhookBodyInvalid(f'an update\'s "{name}" is not epoch seconds')
        seconds = number / 1000 if number > 10**11 else number
        try:
            at = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise WebhookBodyInvalid(f'an update\'s "{name}" is out of range') from None
        return _in_range(at, f'an update\'s "{name}"')
    return None


def _in_range(at: datetime, what: str) -> datetime:
    if not EARLIEST_TIME <= at <= LATEST_TIME:
        raise WebhookBodyInvalid(f"{what} is out of range")
    return at
