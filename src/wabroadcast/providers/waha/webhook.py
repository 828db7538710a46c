"""WAHA's webhooks: which session a call is for, whether WAHA signed it, what it reports.

Pure functions, no I/O, so every rule is unit-tested. WAHA calls one URL per
session (``/api/whatsapp/webhooks/waha/<session id>``), so the path names the
session; the call is untrusted until its ``X-Webhook-Hmac`` (hex HMAC-SHA512
of the raw body, keyed with the session's ``hmac_key``) matches, and the body
is not even parsed before that. Only ``message.ack`` events carry receipts;
every other event WAHA is set to send is accepted and changes nothing.
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
    EARLIEST_EPOCH,
    LATEST_EPOCH,
    epoch_number,
    header,
    hmac_hex,
    routing_key_from_path,
    same_secret,
    webhook_message_id,
    webhook_object,
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

# The session the URL names (a WAHA session's webhook key is its wabroadcast id).
routing_keys = routing_key_from_path


def sign(hmac_key: str, body: bytes) -> str:
    """The ``X-Webhook-Hmac`` value WAHA sends with ``body`` for a webhook keyed ``hmac_key``."""
    return hmac_hex(hmac_key, body, ALGORITHM)


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """Authenticate a WAHA webhook call as this session's and return its receipts.

    Raises ``WebhookSignatureInvalid`` when the HMAC is missing or wrong (before
    the body is read), ``WebhookBodyInvalid`` when the signed body is not a
    WAHA event or its ``message.ack`` is malformed. Other events, acks of
    messages we did not send, and events of another WAHA session give no receipts.
    """
    _check_signature(session, headers, body)
    document = webhook_object(body)
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
    received = header(headers, SIGNATURE_HEADER)
    if received is None:
        raise WebhookSignatureInvalid("the X-Webhook-Hmac header is missing")
    algorithm = header(headers, ALGORITHM_HEADER)
    if algorithm is not None and algorithm.strip().lower() != ALGORITHM:
        raise WebhookSignatureInvalid("the X-Webhook-Hmac-Algorithm is not sha512")
    if not same_secret(received.strip().lower(), sign(hmac_key, body)):
        raise WebhookSignatureInvalid("the X-Webhook-Hmac header does not match")


def _receipt(payload: Mapping[str, object], envelope_timestamp: object) -> Receipt | None:
    """The receipt one ack reports; None for PENDING, SERVER, unknown acks and inbound messages."""
    ack = payload.get("ack")
    if not isinstance(ack, int) or isinstance(ack, bool):
        raise WebhookBodyInvalid('a "message.ack" has no integer "ack"')
    status = ACK_RECEIPTS.get(ack)
    if status is None:
        return None
    message_id = webhook_message_id(
        payload, "id", MAX_MESSAGE_ID, 'a "message.ack"', 'a "message.ack"'
    )
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
    if not EARLIEST_EPOCH <= seconds <= LATEST_EPOCH:
        raise WebhookBodyInvalid("a message.ack time is out of range")
    return datetime.fromtimestamp(seconds, tz=UTC)


def _integer(value: object, name: str) -> int:
    """An epoch number given as an integer or a string of digits."""
    number = epoch_number(value)
    if number is None:
        raise WebhookBodyInvalid(f"{name} is not an epoch number")
    return number


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
