"""The error-rate brake's rule: when a session's recent sends fail too often for reasons
that lie with the numbers, stop before WhatsApp does.

A burst of numbers that cannot receive WhatsApp messages is how restrictions begin
(the 463 timelock of Baileys sessions follows sends to numbers not on WhatsApp),
so a session whose last ``WINDOW`` sends failed that way more than its
``pause_error_rate`` share has its broadcasts paused for a person to look at the
list. Transient failures (timeouts, rate limits, server errors) say nothing about
the list and do not count.
"""

from __future__ import annotations

from wabroadcast.domain.failures import NEVER_PASSING_CODES

# How many of a session's latest sends the brake looks at.
WINDOW = 50
# The share of them that may fail for recipient reasons (WABROADCAST_PAUSE_ERROR_RATE).
DEFAULT_PAUSE_ERROR_RATE = 0.2
# The stored ``status_reason`` of a broadcast the brake paused (texts.PAUSE_SENTENCES
# finds its translation by "of the last").
PAUSE_REASON = (
    "Paused by the error-rate brake: {failures} of the last {window} sends failed "
    "because the numbers cannot receive WhatsApp messages (more than {percent}%)."
)


def recipient_level(error_code: str | None) -> bool:
    """A failure that lies with the number (not on WhatsApp, invalid, blocked us, ...)."""
    return error_code in NEVER_PASSING_CODES


def over_limit(failures: int, rate: float, window: int = WINDOW) -> bool:
    """Whether ``failures`` among the last ``window`` sends is more than ``rate`` of them.

    The share is always of a full window, so the first failures of a new session
    (one of one) do not trip it: with the default, the 11th failure within 50 sends does.
    """
    return failures > rate * window


def pause_reason(failures: int, rate: float, window: int = WINDOW) -> str:
    """The ``status_reason`` of broadcasts the brake paused."""
    percent = f"{rate * 100:g}"
    return PAUSE_REASON.format(failures=failures, window=window, percent=percent)
