"""Token-bucket arithmetic, with no storage and no clock of its own.

A bucket holds up to ``capacity`` tokens and regains ``capacity`` of them over
``window_s`` seconds, continuously. A request takes one token or is refused.
Because the refill is continuous (not a counter reset at a window boundary), a
burst at 59.99 s and another at 60.01 s cannot add up to twice the limit.

Time is seconds since the epoch as a float, so the same sums run in SQL
(``ratelimit.repository``) on PostgreSQL. A clock that goes backwards refills
nothing, and a bucket keeps the latest time it has seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float sums may land a hair below a whole token that time has in fact refilled.
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Limit:
    """One family of buckets: ``name`` prefixes their keys (``api``, ``signin``)."""

    name: str
    capacity: int
    window_s: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.window_s <= 0:
            raise ValueError(f"a limit needs capacity >= 1 and window_s > 0: {self!r}")

    @property
    def per_second(self) -> float:
        return self.capacity / self.window_s

    def key(self, subject: str) -> str:
        """The bucket key of ``subject`` (a tenant id, an address) within this limit."""
        return f"{self.name}:{subject}"[:200]


@dataclass(frozen=True, slots=True)
class Take:
    """What a take (or a look) found: allowed or not, and the bucket afterwards."""

    allowed: bool
    tokens: float
    updated_at: float
    # Whole seconds until one token is back; 0 when allowed.
    retry_after_s: int


def refill(tokens: float, updated_at: float, now: float, limit: Limit) -> float:
    """The tokens in the bucket at ``now``: never more than full, never refilled backwards."""
    elapsed = max(0.0, now - updated_at)
    return min(float(limit.capacity), tokens + elapsed * limit.per_second)


def retry_after_s(tokens: float, limit: Limit) -> int:
    """Whole seconds (rounded up, at least 1) until a bucket holding ``tokens`` holds one."""
    missing = max(0.0, 1.0 - tokens)
    return max(1, math.ceil(missing / limit.per_second - EPSILON))


def peek(tokens: float, updated_at: float, now: float, limit: Limit) -> Take:
    """Whether a take at ``now`` would be allowed, taking nothing."""
    available = refill(tokens, updated_at, now, limit)
    stamp = max(updated_at, now)
    if available >= 1.0 - EPSILON:
        return Take(True, available, stamp, 0)
    return Take(False, available, stamp, retry_after_s(available, limit))


def take(tokens: float, updated_at: float, now: float, limit: Limit) -> Take:
    """Take one token at ``now`` if there is one; the bucket as it is afterwards."""
    looked = peek(tokens, updated_at, now, limit)
    if not looked.allowed:
        return looked
    return Take(True, looked.tokens - 1.0, looked.updated_at, 0)


def full(now: float, limit: Limit) -> tuple[float, float]:
    """A bucket nobody has used (or idle a whole window): full at ``now``."""
    return float(limit.capacity), now
