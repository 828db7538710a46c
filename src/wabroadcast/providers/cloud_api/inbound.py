"""The messages people send to a Cloud API number: ``messages[]`` in the same webhook as
the statuses.

Pure, and called only for a call ``webhook.parse`` has authenticated (and found to
be a WhatsApp webhook). It is lenient where ``parse`` is strict: a message it cannot
read is left out, never a reason to refuse the statuses that came with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from wabroadcast.providers.base import InboundMessage, SessionRef
from wabroadcast.providers.common import EARLIEST_EPOCH, LATEST_EPOCH, epoch_number, webhook_json

MAX_TEXT = 4096


def inbound(session: SessionRef, headers: Mapping[str, str], body: bytes) -> list[InboundMessage]:
    """The messages sent to this session's phone number that the call carries."""
    document = webhook_json(body)
    phone_number_id = session.config.get("phone_number_id")
    if not isinstance(document, dict) or not phone_number_id:
        return []
    found: list[InboundMessage] = []
    for entry in _objects(document.get("entry")):
        for change in _objects(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            if not isinstance(metadata, dict) or metadata.get("phone_number_id") != phone_number_id:
                continue
            for message in _objects(value.get("messages")):
                read = _message(message)
                if read is not None:
                    found.append(read)
    return found


def _objects(value: object) -> list[dict[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _message(message: dict[str, object]) -> InboundMessage | None:
    sender = message.get("from")
    message_id = message.get("id")
    if not isinstance(sender, str) or not isinstance(message_id, str):
        return None
    digits = "".join(ch for ch in sender if ch.isdigit())[:15]
    if not digits or not 0 < len(message_id) <= 128:
        return None
    seconds = epoch_number(message.get("timestamp"))
    if seconds is None or not EARLIEST_EPOCH <= seconds <= LATEST_EPOCH:
        return None
    text = _text(message)
    return InboundMessage(
        provider_message_id=message_id.replace("\x00", ""),
        from_phone=f"+{digits}",
        text=None if text is None else text.replace("\x00", "")[:MAX_TEXT],
        at=datetime.fromtimestamp(seconds, tz=UTC),
    )


def _text(message: dict[str, object]) -> str | None:
    """What the person wrote or tapped: a text's body, a quick-reply button's text, or an
    interactive reply's title."""
    kind = message.get("type")
    if kind == "text":
        return _field(message.get("text"), "body")
    if kind == "button":
        return _field(message.get("button"), "text")
    if kind == "interactive":
        interactive = message.get("interactive")
        if isinstance(interactive, dict):
            for reply in ("button_reply", "list_reply"):
                title = _field(interactive.get(reply), "title")
                if title is not None:
                    return title
    return None


def _field(value: object, name: str) -> str | None:
    if not isinstance(value, dict):
        return None
    field = value.get(name)
    return field if isinstance(field, str) else None
