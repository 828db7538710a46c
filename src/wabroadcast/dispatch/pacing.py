"""How fast a WhatsApp session may send: GCRA with jitter, per provider kind.

Sending too fast gets numbers banned, above all on unofficial WhatsApp Web
gateways (users report bans at a few messages per second and restrictions
after tens of messages to new contacts). The pace is a theoretical arrival
time (``next_send_at``) kept in the database, so it holds across every worker
process and machine sending for the session; jitter makes the rhythm less
mechanical. Each provider's plug-in gives its default pace.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from wabroadcast.providers.base import Pace
from wabroadcast.providers.registry import default_pace


def effective_pace(provider: str, rate_per_minute: float | None, jitter_ms: int | None) -> Pace:
    """The session's own settings where set, else its provider's defaults."""
    default = default_pace(provider)
    return Pace(
        rate_per_minute=default.rate_per_minute if rate_per_minute is None else rate_per_minute,
        jitter_ms=default.jitter_ms if jitter_ms is None else jitter_ms,
    )


def reserve(
    theoretical_arrival: datetime | None, now: datetime, pace: Pace, jitter: timedelta
) -> tuple[datetime, datetime]:
    """GCRA step: (when this send may start, the new theoretical arrival time).

    A send may start at the later of now and the stored arrival time; the
    next one may start one interval (plus jitter) after that. Idle time is not
    saved up into a burst.
    """
    start = now if theoretical_arrival is None or theoretical_arrival < now else theoretical_arrival
    return start, start + pace.interval + jitter
