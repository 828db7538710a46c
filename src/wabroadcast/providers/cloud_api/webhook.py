"""Meta's webhooks: which session a call is for, whether Meta signed it, what it reports.

Pure functions, no I/O, so every rule is unit-tested. A call is untrusted until
its ``X-Hub-Signature-256`` matches the session's app secret: before that it is
read only to find the phone number ids it names (the routing keys), never to
write anything. Once authenticated it is parsed strictly: a signed body that is
not what Meta documents is refused (400) rather than half-applied.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeGuard

from wabroadcast.providers.base import (
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
    WebhookSignatureInvalid,
)
from wabroadcast.providers.cloud_api.errors import classify_status_error
from wabroadcast.providers.common import (
    EARLIEST_EPOCH,
    LATEST_EPOCH,
    epoch_number,
    header,
    json_or_none,
    same_secret,
    sha256_signature,
    webhook_json,
    webhook_message_id,
)

SIGNATURE_HEADER = "x-hub-signature-256"
WEBHOOK_OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"

# Distinct phone number ids a routing lookup returns at most (a real call names one).
MAX_ROUTING_KEYS = 100
MAX_PHONE_NUMBER_ID = 32
MAX_MESSAGE_ID = 128
MAX_CHALLENGE = 256
# Epoch seconds as a string of at most this many digits (then the range decides).
MAX_TIMESTAMP_DIGITS = 12

RECEIPT_STATUSES = {
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.READ,
    "failed": ReceiptStatus.FAILED,
}


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``, signed with ``app_secret``."""
    return sha256_signature(app_secret, body)


def routing_keys(headers: Mapping[str, str], body: bytes, path_key: str | None) -> list[str]:
    """The distinct phone number ids an (unauthenticated) call names; [] if malformed."""
    document = json_or_none(body)
    entries = document.get("entry") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return []
    keys: dict[str, None] = {}
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            return []
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            key = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if _is_phone_number_id(key):
                keys[key] = None
                if len(keys) >= MAX_ROUTING_KEYS:
                    return list(keys)
    return list(keys)


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """Authenticate a status webhook as this session's and return its receipts.

    Raises ``WebhookSignatureInvalid`` when the signature is missing or wrong,
    ``WebhookBodyInvalid`` when the signed body is not a WhatsApp webhook.
    Changes for other phone numbers are skipped (another session's), as are
    ``sent`` statuses and inbound messages.
    """
    _check_signature(session, headers, body)
    document = webhook_json(body)
    if not isinstance(document, dict) or document.get("object") != WEBHOOK_OBJECT:
        raise WebhookBodyInvalid(f'"object" is not "{WEBHOOK_OBJECT}"')
    entries = document.get("entry")
    if not isinstance(entries, list):
        raise WebhookBodyInvalid('"entry" is not a list')
    phone_number_id = session.config.get("phone_number_id")
    if not _is_phone_number_id(phone_number_id):
        raise WebhookBodyInvalid("the session has no phone number id to match changes with")
    receipts: list[Receipt] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise WebhookBodyInvalid('an entry has no "changes" list')
        for change in changes:
            if not isinstance(change, dict):
                raise WebhookBodyInvalid("a change is not an object")
            if change.get("field") != MESSAGES_FIELD:
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                raise WebhookBodyInvalid('a change has no "value" object')
            metadata = value.get("metadata")
            if not isinstance(metadata, dict) or metadata.get("phone_number_id") != phone_number_id:
                continue
            statuses = value.get("statuses", [])
            if not isinstance(statuses, list):
                raise WebhookBodyInvalid('"statuses" is not a list')
            for status in statuses:
                receipt = _receipt(status)
                if receipt is not None:
                    receipts.append(receipt)
    return receipts


def verify_subscription(query: Mapping[str, str], sessions: Sequence[SessionRef]) -> str | None:
    """Meta's GET handshake: the challenge to echo if the verify token is a session's, else None."""
    if query.get("hub.mode") != "subscribe":
        return None
    token = query.get("hub.verify_token")
    challenge = query.get("hub.challenge")
    if not token or not challenge or not _is_safe_challenge(challenge):
        return None
    offered = token.encode()
    matched = False
    # Every session is compared, so the time taken does not tell which one matched.
    for session in sessions:
        expected = session.config.get("verify_token")
        if isinstance(expected, str) and expected:
            matched |= hmac.compare_digest(offered, expected.encode())
    return challenge if matched else None


def _check_signature(session: SessionRef, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``WebhookSignatureInvalid`` unless the call carries this session's signature."""
    app_secret = session.config.get("app_secret")
    if not isinstance(app_secret, str) or not app_secret:
        raise WebhookSignatureInvalid("the session has no app secret to check the signature with")
    received = header(headers, SIGNATURE_HEADER)
    if received is None:
        raise WebhookSignatureInvalid("the X-Hub-Signature-256 header is missing")
    if not same_secret(received.strip(), sign(app_secret, body)):
        raise WebhookSignatureInvalid("the X-Hub-Signature-256 header does not match")


def _receipt(status: object) -> Receipt | None:
    """The receipt one status reports; None for ``sent`` and statuses we do not track."""
    if not isinstance(status, dict):
        raise WebhookBodyInvalid("a status is not an object")
    name = status.get("status")
    receipt_status = RECEIPT_STATUSES.get(name) if isinstance(name, str) else None
    if receipt_status is None:
        return None
    message_id = webhook_message_id(status, "id", MAX_MESSAGE_ID, "a status", "a status")
    at = _timestamp(status.get("timestamp"))
    if receipt_status is not ReceiptStatus.FAILED:
        return Receipt(message_id, receipt_status, at)
    error_code, error_message = classify_status_error(status.get("errors"))
    return Receipt(message_id, receipt_status, at, error_code, error_message.replace("\x00", ""))


def _timestamp(value: object) -> datetime:
    """A status timestamp (epoch seconds, as a string) as an aware UTC datetime."""
    seconds = epoch_number(value, MAX_TIMESTAMP_DIGITS)
    if seconds is None:
        raise WebhookBodyInvalid('a status "timestamp" is not epoch seconds')
    if not EARLIEST_EPOCH <= seconds <= LATEST_EPOCH:
        raise WebhookBodyInvalid('a status "timestamp" is out of range')
    return datetime.fromtimestamp(seconds, tz=UTC)


def _is_phone_number_id(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_PHONE_NUMBER_ID
        and value.isascii()
        and value.isdigit()
    )


def _is_safe_challenge(challenge: str) -> bool:
    """Short printable ASCII: it is echoed back as the whole response body."""
    return len(challenge) <= MAX_CHALLENGE and challenge.isascii() and challenge.isprintable()
