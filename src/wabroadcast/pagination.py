"""Cursor pagination shared by every list: opaque cursors over the last row's key.

A cursor is ``kind:value`` base64url-encoded: ``id`` cursors carry a positive
BIGINT id, ``sid`` cursors a session id. One that was not made here (tampered,
foreign, out of range, or holding text no database can store) is a 422, never a 500.
"""

from __future__ import annotations

import base64
import binascii

from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.domain.recipients import is_storable_text

MAX_CURSOR_ID = 2**63 - 1


def _encode(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode("ascii").rstrip("=")


def _decode(kind: str, cursor: str) -> str:
    """The value of a ``kind`` cursor; ``ValidationFailed`` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise _not_ours() from exc
    prefix, _, value = text.partition(":")
    if prefix != kind or not value or not is_storable_text(value):
        raise _not_ours()
    return value


def _not_ours() -> ValidationFailed:
    return ValidationFailed(
        "cursor: not a cursor returned by this API", details={"field": "cursor"}
    )


def encode_cursor(last_id: int) -> str:
    return _encode("id", str(last_id))


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor points past."""
    if cursor is None:
        return None
    value = _decode("id", cursor)
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_CURSOR_ID:
        raise _not_ours()  # ids are positive BIGINTs
    return int(value)


def page_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor for the page after this one, or None when this page was the last."""
    return encode_cursor(ids[-1]) if len(ids) == limit and ids else None


def encode_session_cursor(session_id: str) -> str:
    return _encode("sid", session_id)


def decode_session_cursor(cursor: str | None) -> str | None:
    """The session id a sessions cursor points past."""
    return None if cursor is None else _decode("sid", cursor)
