"""The messages people send to a WAHA session's number: its ``message`` events.

Pure, and called only for a call ``webhook.parse`` has authenticated. Lenient where
``parse`` is strict: an event it cannot read gives no message, never a refusal.
WAHA sends ``message`` events when the session's webhook lists them (next to
``message.ack``); messages in groups, and senders known only by a ``@lid``, are
not a number that can opt out and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from wabroadcast.providers.base import InboundMessage, SessionRef
from wabroadcast.providers.common import (
    EARLIEST_EPOCH,
    LATEST_EPOCH,
    epoch_number,
    json_or_none,
)

MESSAGE_EVENT = "message"
PERSONAL_SUFFIXES = ("@c.us", "@s.whatsapp.net")
MAX_MESSAGE_ID = 128
MAX_TEXT = 4096


def inbound(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[InboundMessage]:
    """The message a ``message`` event carries, when it is a person's, to this session."""
    document = json_or_none(body)
    if not isinstance(document, dict) or document.get("event") != MESSAGE_EVENT:
        return []
    named_session, configured = document.get("session"), session.config.get("session")
    if (
        isinstance(named_session, str)
        and isinstance(configured, str)
        and named_session != configured
    ):
        return []  # another WAHA session's
    payload = document.get("payload")
    if not isinstance(payload, dict) or payload.get("fromMe") is not False:
        return []
    sender, message_id, text = payload.get("from"), payload.get("id"), payload.get("body")
    if not isinstance(sender, str) or not sender.endswith(PERSONAL_SUFFIXES):
        return []
    digits = "".join(ch for ch in sender.split("@", 1)[0] if ch.isdigit())[:15]
    if not digits or not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID:
        return []
    return [
        InboundMessage(
            provider_message_id=message_id.replace("\x00", ""),
            from_phone=f"+{digits}",
            text=text.replace("\x00", "")[:MAX_TEXT] if isinstance(text, str) else None,
            at=_time(payload.get("timestamp")),
        )
    ]


def _time(value: object) -> datetime:
    seconds = epoch_number(value)
    if seconds is None or not EARLIEST_EPOCH <= seconds <= LATEST_EPOCH:
        return datetime.now(UTC)
    return datetime.fromtimestamp(seconds, tz=UTC)
