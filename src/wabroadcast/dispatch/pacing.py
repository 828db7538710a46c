"""How fast a WhatsApp session may send: GCRA with jitter, per provider kind.

Sending too fast gets numbers banned, above all on unofficial WhatsApp Web
gateways (users report bans at a few messages per second and restrictions
after tens of messages to new contacts). The pace is a theoretical arrival
time (``next_send_at``) kept in the database, so it holds across every worker
process and machine sending for the session; jitter makes the rhythm less
mechanical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Pace:
    """Messages per minute (0 = unpaced) and the random extra gap added to each."""

    rate_per_minute: float
    jitter_ms: int

    @property
    def paced(self) -> bool:
        return self.rate_per_minute > 0

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=60.0 / self.rate_per_minute)


# Defaults per provider kind, used when a session sets no pace of its own.
# The simulator's is slow enough for the demo to visibly progress; gateways on
# WhatsApp Web start cautious (about 8 a minute with seconds of jitter, in line
# with what their users report as safe); the official Cloud API allows 80/s.
DEFAULT_PACE: dict[str, Pace] = {
    "simulator": Pace(rate_per_minute=120, jitter_ms=250),
    "baileys": Pace(rate_per_minute=8, jitter_ms=3000),
    "evolution": Pace(rate_per_minute=8, jitter_ms=3000),
    "waha": Pace(rate_per_minute=8, jitter_ms=3000),
    "cloud_api": Pace(rate_per_minute=60 * 60, jitter_ms=0),
}
FALLBACK_PACE = Pace(rate_per_minute=8, jitter_ms=3000)


def effective_pace(provider: str, rate_per_minute: float | None, jitter_ms: int | None) -> Pace:
    """The session's own settings where set, else its provider's defaults."""
    default = DEFAULT_PACE.get(provider, FALLBACK_PACE)
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
