"""Cursor pagination shared by every list: opaque cursors over positive BIGINT ids.

A cursor is the last id of a page, base64url-encoded; one that was not made here
(tampered, foreign, out of range) is a 422, never a 500.
"""

from __future__ import annotations

import base64
import binascii

from wabroadcast.domain.errors import ValidationFailed


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


MAX_CURSOR_ID = 2**63 - 1


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor points past; a tampered or foreign cursor is a 422, not a 500."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        prefix, _, value = text.partition(":")
        if prefix != "id" or not value.isdigit():
            raise ValueError(text)
        last_id = int(value)
        if not 1 <= last_id <= MAX_CURSOR_ID:  # ids are positive BIGINTs
            raise ValueError(text)
        return last_id
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise ValidationFailed(
            "cursor: not a cursor returned by this API", details={"field": "cursor"}
        ) from exc


def page_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor for the page after this one, or None when this page was the last."""
    return encode_cursor(ids[-1]) if len(ids) == limit and ids else None
