"""Replies: how long after a send a message from its number counts as a reply, and
what of it is kept. Pure, so the settings parser and the cap are tested row by row."""

from __future__ import annotations

from wabroadcast.domain.durations import duration_seconds

# The first reply's text is kept up to this many characters (the dashboard shows it).
REPLY_TEXT_CHARS = 1000
DEFAULT_REPLY_WINDOW_S = 72 * 3600


def parse_duration_hours(value: object) -> object:
    """Seconds from ``72h``, ``90m``, ``3d``, ``3600s`` or a bare number of hours;
    anything else is returned as it is, for the field's own validation to refuse."""
    if not isinstance(value, str):
        return value
    seconds = duration_seconds(value, bare_unit="h")
    return value if seconds is None else seconds


def reply_excerpt(text: str | None) -> str | None:
    """The part of a reply's text that is kept."""
    return None if text is None else text[:REPLY_TEXT_CHARS]


def reply_rate(replies: int, sent: int) -> float | None:
    """Replies as a percent of the recipients sent to, to one decimal; None before any send."""
    if sent <= 0:
        return None
    return round(100 * replies / sent, 1)
