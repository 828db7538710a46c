"""When to try a failed send again: retry policy as data, and jittered backoff.

Transient failures (a timeout before the request left, a refused connection,
429, 5xx, a disconnected session) come back later; the delay doubles per
attempt up to a cap, with jitter so that many recipients failing together do
not retry together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 2.0
    cap_s: float = 300.0
    jitter: float = 0.2

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1))
        return max(0.0, float(raw * (1 + rng.uniform(-self.jitter, self.jitter))))

    def next_attempt_at(self, now: datetime, attempt: int, rng: random.Random) -> datetime:
        return now + timedelta(seconds=self.delay_s(attempt, rng))

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` used up every try this policy allows."""
        return attempts >= self.max_attempts
