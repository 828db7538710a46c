"""The error-rate brake of one worker process: each session's latest sends, as seen here.

The window lives in memory: the brake must cost nothing on the send path, and a
session's sends go through the slots of the worker holding its leases (one slot
by default). A session whose slots are spread over several workers has a window
in each, and a restarted worker starts with empty windows; docs/guarantees.md says so.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from wabroadcast.domain.error_rate import WINDOW, over_limit


class ErrorRateBrake:
    """Counts each session's latest sends and says when too many failed for the numbers."""

    def __init__(self, default_rate: float, window: int = WINDOW) -> None:
        self.default_rate = default_rate
        self.window = window
        self._latest: dict[str, deque[bool]] = {}

    def record(self, session_id: str, failed: Iterable[bool], rate: float | None) -> int | None:
        """Note sends of the session (True: failed for a recipient reason), in order.

        Returns the number of such failures in the window as soon as, after any one
        of these sends, it is over the session's ``rate`` (None: the default): the
        same sends trip it however they were grouped into provider calls. The window
        then starts afresh, so resuming the paused broadcasts gives the list a new one.
        """
        latest = self._latest.setdefault(session_id, deque(maxlen=self.window))
        limit = self.rate(rate)
        failures = sum(latest)
        for one in failed:
            if len(latest) == self.window:
                failures -= latest[0]
            latest.append(one)
            failures += one
            if one and over_limit(failures, limit, self.window):
                latest.clear()
                return failures
        return None

    def rate(self, rate: float | None) -> float:
        return self.default_rate if rate is None else rate
