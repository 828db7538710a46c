"""WAHA's webhooks: which session a call is for, whether WAHA signed it, what it reports.

Pure functions, no I/O, so every rule is unit-tested. WAHA calls one URL per
session (``/api/whatsapp/webhooks/waha/<session id>``), so the path names the
session; the call is untrusted until its ``X-Webhook-Hmac`` (hex HMAC-SHA512
of the raw body, keyed with the session's ``hmac_key``) matches, and the body
is not even parsed before that. Only ``message.ack`` events carry receipts;
every other event WAHA is set to send is accepted and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime

from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.waha.errors import clean

SIGNATURE_HEADER = "x-webhook-hmac"
ALGORITHM_HEADER = "x-webhook-hmac-algorithm"
ALGORITHM = "sha512"
ACK_EVENT = "message.ack"
ACK_ERROR_CODE = "WAHA_ACK_ERROR"
ACK_ERROR_MESSAGE = "WhatsApp reported the message as not sent (WAHA ack ERROR)."
ACCOUNT_RESTRICTED_CODE = "463"
RESTRICTED_MESSAGE = (
    "WhatsApp restricted this account ({code}): sending is paused; sending more makes it worse."
)

MAX_MESSAGE_ID = 128
# Times outside these years are not WAHA's: the body is refused.
EARLIEST_TIMESTAMP = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
LATEST_TIMESTAMP = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())

# WAHA's ack (-1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED) -> our receipt.
# PENDING and SERVER say no more than the send's answer did: no receipt.
ACK_RECEIPTS: dict[int, ReceiptStatus | None] = {
    -1: ReceiptStatus.FAILED,
    0: None,
    1: None,
    2: ReceiptStatus.DELIVERED,
    3: ReceiptStatus.READ,
    4: ReceiptStatus.READ,
}


def sign(hmac_key: str, body: bytes) -> str:
    """The ``X-Webhook-Hmac`` value WAHA sends with ``body`` for a webhook keyed ``hmac_key``."""
    return hmac.new(hmac_key.encode(), body, hashlib.sha512).hexdigest()


def routing_keys(headers: Mapping[str, str], body: bytes, path_key: str | None) -> list[str]:
    """The session the URL names (a WAHA session's webhook key is its wabroadcast id)."""
    return [path_key] if path_key else []


def webhook_key(session_id: str, config: Mapping[str, object]) -> str:
    return session_id


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """Authenticate a WAHA webhook call as this session's and return its receipts.

    Raises ``WebhookSignatureInvalid`` when the HMAC is missing or wrong (before
    the body is read), ``WebhookBodyInvalid`` when the signed body is not a
    WAHA event or its ``message.ack`` is malformed. Other events, acks of
    messages we did not send, and events of another WAHA session give no receipts.
    """
    _check_signature(session, headers, body)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookBodyInvalid("the body is not JSON") from None
    if not isinstance(document, dict):
        raise WebhookBodyInvalid("the body is not a JSON object")
    event = document.get("event")
    if not isinstance(event, str):
        raise WebhookBodyInvalid('"event" is missing')
    if event != ACK_EVENT:
        return []
    named_session = document.get("session")
    configured = session.config.get("session")
    if (
        isinstance(named_session, str)
        and isinstance(configured, str)
        and named_session != configured
    ):
        return []
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise WebhookBodyInvalid('a "message.ack" has no "payload" object')
    receipt = _receipt(payload, document.get("timestamp"))
    return [] if receipt is None else [receipt]


def _check_signature(session: SessionRef, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``WebhookSignatureInvalid`` unless the call carries this session's HMAC."""
    hmac_key = session.config.get("hmac_key")
    if not isinstance(hmac_key, str) or not hmac_key:
        raise WebhookSignatureInvalid("the session has no HMAC key to check the signature with")
    received = _header(headers, SIGNATURE_HEADER)
    if received is None:
        raise WebhookSignatureInvalid("the X-Webhook-Hmac header is missing")
    algorithm = _header(headers, ALGORITHM_HEADER)
    if algorithm is not None and algorithm.strip().lower() != ALGORITHM:
        raise WebhookSignatureInvalid("the X-Webhook-Hmac-Algorithm is not sha512")
    # Compared as bytes, so that a non-ASCII header is a mismatch, not a TypeError.
    offered = received.strip().lower().encode("utf-8", errors="replace")
    if not hmac.compare_digest(offered, sign(hmac_key, body).encode("ascii")):
        raise WebhookSignatureInvalid("the X-Webhook-Hmac header does not match")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever the case of its name (``name`` is lower case)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def _receipt(payload: Mapping[str, object], envelope_timestamp: object) -> Receipt | None:
    """The receipt one ack reports; None for PENDING, SERVER, unknown acks and inbound messages."""
    ack = payload.get("ack")
    if not isinstance(ack, int) or isinstance(ack, bool):
        raise WebhookBodyInvalid('a "message.ack" has no integer "ack"')
    status = ACK_RECEIPTS.get(ack)
    if status is None:
        return None
    message_id = payload.get("id")
    if not isinstance(message_id, str):
        raise WebhookBodyInvalid('a "message.ack" has no "id"')
    message_id = message_id.replace("\x00", "")
    if not 1 <= len(message_id) <= MAX_MESSAGE_ID:
        raise WebhookBodyInvalid(f'a "message.ack" "id" is not 1 to {MAX_MESSAGE_ID} characters')
    # Acks of messages sent to this number are not receipts of ours.
    if payload.get("fromMe") is False or message_id.startswith("false_"):
        return None
    at = _time(payload.get("timestamp"), envelope_timestamp)
    if status is not ReceiptStatus.FAILED:
        return Receipt(message_id, status, at)
    message, restricted = _ack_error(payload)
    return Receipt(message_id, status, at, ACK_ERROR_CODE, message, account_blocked=restricted)


def _time(payload_timestamp: object, envelope_timestamp: object) -> datetime:
    """When the ack happened: the payload's epoch seconds, else the envelope's epoch
    milliseconds, else now (WAHA builds before 2025 send neither)."""
    if payload_timestamp is not None:
        seconds = _integer(payload_timestamp, '"payload.timestamp"')
    elif envelope_timestamp is not None:
        seconds = _integer(envelope_timestamp, '"timestamp"') // 1000
    else:
        return datetime.now(UTC)
    if not EARLIEST_TIMESTAMP <= seconds <= LATEST_TIMESTAMP:
        raise WebhookBodyInvalid("a message.ack time is out of range")
    return datetime.fromtimestamp(seconds, tz=UTC)


def _integer(value: object, name: str) -> int:
    """An epoch number given as an integer or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        return int(value)
    raise WebhookBodyInvalid(f"{name} is not an epoch number")


def _ack_error(payload: Mapping[str, object]) -> tuple[str, bool]:
    """The error message of an ERROR ack, and whether it says the account is restricted.

    Newer WAHA builds add ``payload.error`` ``{code, blocked}``: WhatsApp's 463 (or
    ``blocked: true``) means the number itself is restricted, so the session's
    broadcasts are paused; sending more makes it worse.
    """
    error = payload.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    code = clean(code)[:32] if isinstance(code, str) else ""
    restricted = code == ACCOUNT_RESTRICTED_CODE or (
        isinstance(error, Mapping) and error.get("blocked") is True
    )
    if restricted:
        return RESTRICTED_MESSAGE.format(code=code or "blocked"), True
    if code:
        return f"{ACK_ERROR_MESSAGE[:-1]}, WhatsApp error {code}.", False
    return ACK_ERROR_MESSAGE, False
