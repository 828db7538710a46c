"""The gateway's calls: signed per session like the simulator's, then decoded.

The gateway signs the raw body with the session's webhook secret (HMAC-SHA256,
``X-Wabroadcast-Signature: sha256=<hex>``) and names the session in
``X-Wabroadcast-Session``. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from wabroadcast.providers.base import (
    InboundMessage,
    Receipt,
    ReceiptStatus,
    SessionRef,
    WebhookBodyInvalid,
)
from wabroadcast.providers.common import (
    EARLIEST_TIME,
    LATEST_TIME,
    OWN_SESSION_HEADER,
    OWN_SIGNATURE_HEADER,
    check_own_signature,
    own_routing_keys,
    sha256_signature,
)

SESSION_HEADER = OWN_SESSION_HEADER
SIGNATURE_HEADER = OWN_SIGNATURE_HEADER
# WhatsApp's error ack for a restricted account: pause, never retry (retrying worsens it).
ACCOUNT_RESTRICTED_CODE = "463"
# Gateway statuses -> our receipts; server_ack (and pending) change nothing.
STATUSES = {
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.READ,
    "played": ReceiptStatus.READ,
    "error": ReceiptStatus.FAILED,
}
sign = sha256_signature
routing_keys = own_routing_keys


def _event(body: bytes) -> tuple[str, dict[str, object], datetime]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookBodyInvalid("body: not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("event"), str):
        raise WebhookBodyInvalid("body: an object with an event")
    data = document.get("data")
    if not isinstance(data, dict):
        raise WebhookBodyInvalid("data: must be an object")
    at_text = document.get("at")
    try:
        at = datetime.fromisoformat(str(at_text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise WebhookBodyInvalid("at: not an ISO-8601 time") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if not EARLIEST_TIME <= at <= LATEST_TIME:
        raise WebhookBodyInvalid("at: out of range")
    return document["event"], data, at


def parse(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
    """The receipt a ``message.status`` call carries (none for other events)."""
    check_own_signature(session.webhook_secret, headers, body)
    event, data, at = _event(body)
    if event != "message.status":
        return []
    message_id = data.get("message_id")
    status = STATUSES.get(str(data.get("status")))
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 128:
        raise WebhookBodyInvalid("data.message_id: required, at most 128 characters")
    if status is None:
        return []
    if status is not ReceiptStatus.FAILED:
        return [Receipt(message_id, status, at)]
    code = str(data.get("error_code") or "").replace("\x00", "")[:32]
    restricted = code == ACCOUNT_RESTRICTED_CODE or data.get("account_restricted") is True
    message = (
        "WhatsApp restricted this account (463): sending is paused; sending more makes it worse."
        if restricted
        else f"WhatsApp refused the message (error {code or 'unknown'})."
    )
    return [
        Receipt(
            message_id,
            ReceiptStatus.FAILED,
            at,
            error_code=f"BAILEYS_{code}" if code else "BAILEYS_ERROR",
            error_message=message,
            account_blocked=restricted,
        )
    ]


def inbound(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[InboundMessage]:
    """The message a ``message.inbound`` call carries (the call is already authenticated)."""
    event, data, at = _event(body)
    if event != "message.inbound":
        return []
    sender = str(data.get("from") or "")
    digits = "".join(ch for ch in sender if ch.isdigit())[:15]
    message_id = data.get("message_id")
    text = data.get("text")
    if not digits or not isinstance(message_id, str) or not 0 < len(message_id) <= 128:
        return []
    return [
        InboundMessage(
            provider_message_id=message_id,
            from_phone=f"+{digits}",
            text=None if not isinstance(text, str) else text.replace("\x00", "")[:4096],
            at=at,
        )
    ]
