"""The messages people send to an Evolution session's number: ``messages.upsert`` events.

Pure, and called only for a call ``webhook.parse`` has authenticated (wabroadcast
registers ``MESSAGES_UPSERT`` with Evolution, ``setup.WEBHOOK_EVENTS``). Lenient
where ``parse`` is strict: an item it cannot read gives no message, never a
refusal. Group messages, our own messages and senders known only by a ``@lid``
(without the number Evolution may add as ``senderPn``/``remoteJidAlt``) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from wabroadcast.providers.base import InboundMessage, SessionRef
from wabroadcast.providers.common import EARLIEST_EPOCH, LATEST_EPOCH, epoch_number, json_or_none

UPSERT_EVENT = "messages.upsert"
PERSONAL_SUFFIX = "@s.whatsapp.net"
MAX_ITEMS = 1000
MAX_MESSAGE_ID = 128
MAX_TEXT = 4096


def inbound(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[InboundMessage]:
    """The people's messages a ``messages.upsert`` call carries (one item or a list)."""
    document = json_or_none(body)
    if not isinstance(document, dict):
        return []
    event = document.get("event")
    if not isinstance(event, str) or event.strip().lower().replace("_", ".") != UPSERT_EVENT:
        return []
    data = document.get("data")
    items = data if isinstance(data, list) else [data]
    found = [_message(item) for item in items[:MAX_ITEMS] if isinstance(item, dict)]
    return [message for message in found if message is not None]


def _message(item: Mapping[str, object]) -> InboundMessage | None:
    key = item.get("key")
    if not isinstance(key, dict) or key.get("fromMe") is not False:
        return None
    message_id = key.get("id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID:
        return None
    digits = _sender_digits(key)
    if digits is None:
        return None
    return InboundMessage(
        provider_message_id=message_id.replace("\x00", ""),
        from_phone=f"+{digits}",
        text=_text(item.get("message")),
        at=_time(item.get("messageTimestamp")),
    )


def _sender_digits(key: Mapping[str, object]) -> str | None:
    """The sender's number: ``remoteJid``, or its phone form when that is a ``@lid``."""
    for name in ("remoteJid", "senderPn", "remoteJidAlt"):
        jid = key.get(name)
        if isinstance(jid, str) and jid.endswith(PERSONAL_SUFFIX):
            digits = "".join(ch for ch in jid.split("@", 1)[0] if ch.isdigit())[:15]
            return digits or None
    return None


def _text(message: object) -> str | None:
    """What the person wrote or tapped, in the Baileys message shapes Evolution relays."""
    if not isinstance(message, dict):
        return None
    candidates = (
        message.get("conversation"),
        _field(message.get("extendedTextMessage"), "text"),
        _field(message.get("buttonsResponseMessage"), "selectedDisplayText"),
        _field(message.get("templateButtonReplyMessage"), "selectedDisplayText"),
        _field(message.get("listResponseMessage"), "title"),
    )
    text = next((c for c in candidates if isinstance(c, str)), None)
    return None if text is None else text.replace("\x00", "")[:MAX_TEXT]


def _field(value: object, name: str) -> object:
    return value.get(name) if isinstance(value, dict) else None


def _time(value: object) -> datetime:
    number = epoch_number(value)
    if number is None:
        return datetime.now(UTC)
    seconds = number // 1000 if number > 10**11 else number
    if not EARLIEST_EPOCH <= seconds <= LATEST_EPOCH:
        return datetime.now(UTC)
    return datetime.fromtimestamp(seconds, tz=UTC)
