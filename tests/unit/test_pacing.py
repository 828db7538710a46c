"""GCRA pacing and the retry policy: pure functions, controlled time and randomness."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from wabroadcast.dispatch.pacing import effective_pace, reserve
from wabroadcast.dispatch.retry import RetryPolicy
from wabroadcast.providers.base import Pace
from wabroadcast.providers.registry import PLUGINS

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_sends_are_spaced_by_the_interval_plus_jitter() -> None:
    pace = Pace(rate_per_minute=60, jitter_ms=0)
    tat = None
    starts = []
    for _ in range(5):
        start, tat = reserve(tat, T0, pace, timedelta(0))
        starts.append(start)
    assert [(s - T0).total_seconds() for s in starts] == [0, 1, 2, 3, 4]
    start, _ = reserve(tat, T0, pace, timedelta(milliseconds=300))
    assert (start - T0).total_seconds() == 5


def test_idle_time_is_not_saved_up_into_a_burst() -> None:
    pace = Pace(rate_per_minute=60, jitter_ms=0)
    _, tat = reserve(None, T0, pace, timedelta(0))
    later = T0 + timedelta(minutes=10)
    first, tat = reserve(tat, later, pace, timedelta(0))
    second, _ = reserve(tat, later, pace, timedelta(0))
    assert first == later
    assert (second - first).total_seconds() == 1


@given(
    st.floats(min_value=1, max_value=6000),
    st.lists(st.integers(min_value=0, max_value=5000), min_size=2, max_size=30),
)
def test_no_two_sends_are_closer_than_the_interval(rate: float, jitters: list[int]) -> None:
    pace = Pace(rate_per_minute=rate, jitter_ms=5000)
    tat = None
    starts = []
    for jitter in jitters:
        start, tat = reserve(tat, T0, pace, timedelta(milliseconds=jitter))
        starts.append(start)
    gaps = [b - a for a, b in pairwise(starts)]
    assert all(gap >= pace.interval for gap in gaps)


def test_session_settings_override_provider_defaults() -> None:
    assert effective_pace("simulator", None, None) == PLUGINS["simulator"].default_pace
    assert effective_pace("baileys", None, None).rate_per_minute <= 10
    assert effective_pace("simulator", 0, None).paced is False
    assert effective_pace("simulator", 30, 100) == Pace(30, 100)
    assert effective_pace("some-new-gateway", None, None).rate_per_minute <= 10


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=2, cap_s=10, jitter=0.2)
    rng = random.Random(1)
    delays = [policy.delay_s(attempt, rng) for attempt in range(1, 6)]
    for attempt, delay in enumerate(delays, start=1):
        nominal = min(10, 2 * 2 ** (attempt - 1))
        assert nominal * 0.8 <= delay <= nominal * 1.2
    assert policy.next_attempt_at(T0, 1, random.Random(1)) > T0
    assert not policy.exhausted(4)
    assert policy.exhausted(5)
