"""Token-bucket arithmetic, row by row: takes, refills, boundaries, a clock that goes back."""

from __future__ import annotations

import pytest

from wabroadcast.ratelimit.bucket import Limit, Take, full, peek, refill, retry_after_s, take

PER_MINUTE = Limit("api", 600, 60.0)
SIGNIN = Limit("signin", 10, 900.0)


def burst(tokens: float, updated_at: float, now: float, count: int, limit: Limit) -> list[Take]:
    """``count`` takes at the same instant, each from the bucket the last one left."""
    results = []
    for _ in range(count):
        result = take(tokens, updated_at, now, limit)
        results.append(result)
        if result.allowed:
            tokens, updated_at = result.tokens, result.updated_at
    return results


def test_a_full_bucket_allows_its_capacity_then_refuses() -> None:
    results = burst(*full(0.0, PER_MINUTE), 0.0, 700, PER_MINUTE)
    assert sum(r.allowed for r in results) == 600
    assert all(r.allowed for r in results[:600])
    assert not any(r.allowed for r in results[600:])
    assert {r.retry_after_s for r in results[600:]} == {1}  # one token back in 0.1 s
    assert {r.retry_after_s for r in results[:600]} == {0}


def test_a_burst_across_a_minute_boundary_is_still_limited() -> None:
    """A fixed window would reset at 60 s and let 1,200 through in 20 ms; a bucket does not."""
    first = burst(*full(59.99, PER_MINUTE), 59.99, 600, PER_MINUTE)
    assert all(r.allowed for r in first)
    left = first[-1]
    assert left.tokens == pytest.approx(0.0)
    second = burst(left.tokens, left.updated_at, 60.01, 600, PER_MINUTE)
    # 0.02 s refill 0.2 of a token: nothing more is allowed.
    assert sum(r.allowed for r in second) == 0
    assert second[0].tokens == pytest.approx(0.2)
    assert second[0].retry_after_s == 1


def test_time_refills_in_proportion_and_never_past_full() -> None:
    assert refill(0.0, 100.0, 101.0, PER_MINUTE) == pytest.approx(10.0)
    assert refill(0.0, 100.0, 130.0, PER_MINUTE) == pytest.approx(300.0)
    assert refill(0.0, 100.0, 160.0, PER_MINUTE) == 600.0
    assert refill(5.0, 100.0, 10_000.0, PER_MINUTE) == 600.0
    after_a_second = burst(0.0, 100.0, 101.0, 11, PER_MINUTE)
    assert [r.allowed for r in after_a_second] == [True] * 10 + [False]


def test_a_clock_that_goes_back_refills_nothing_and_keeps_the_latest_time() -> None:
    assert refill(3.0, 100.0, 40.0, PER_MINUTE) == 3.0
    result = take(3.0, 100.0, 40.0, PER_MINUTE)
    assert (result.allowed, result.tokens, result.updated_at) == (True, 2.0, 100.0)
    refused = take(0.5, 100.0, 40.0, PER_MINUTE)
    assert (refused.allowed, refused.updated_at) == (False, 100.0)
    assert refused.retry_after_s >= 1
    # Back at the stored time nothing has refilled either; only time after it counts.
    assert refill(2.0, 100.0, 100.0, PER_MINUTE) == 2.0
    assert refill(2.0, 100.0, 100.5, PER_MINUTE) == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("tokens", "limit", "expected"),
    [
        (0.0, PER_MINUTE, 1),  # 0.1 s, rounded up to a whole second
        (0.99, PER_MINUTE, 1),
        (0.0, SIGNIN, 90),  # one failure back every 90 s
        (0.5, SIGNIN, 45),
        (0.2, SIGNIN, 72),
        (0.0, Limit("slow", 1, 60.0), 60),  # exactly a whole number: not 61
        (0.0, Limit("slow", 3, 10.0), 4),  # 3.33 s
        (1.0, PER_MINUTE, 1),  # never less than one second
    ],
)
def test_retry_after_is_whole_seconds_rounded_up(
    tokens: float, limit: Limit, expected: int
) -> None:
    assert retry_after_s(tokens, limit) == expected


def test_waiting_retry_after_always_gives_a_token_back() -> None:
    for limit in (PER_MINUTE, SIGNIN, Limit("odd", 7, 13.0), Limit("slow", 1, 60.0)):
        tokens, updated_at = 0.0, 1_000.0
        wait = retry_after_s(tokens, limit)
        assert take(tokens, updated_at, updated_at + wait, limit).allowed, limit
        assert not take(tokens, updated_at, updated_at + wait - 1, limit).allowed


def test_peek_takes_nothing() -> None:
    looked = peek(1.0, 0.0, 0.0, SIGNIN)
    assert (looked.allowed, looked.tokens) == (True, 1.0)
    empty = peek(0.0, 0.0, 0.0, SIGNIN)
    assert (empty.allowed, empty.retry_after_s) == (False, 90)
    assert peek(0.0, 0.0, 90.0, SIGNIN).allowed


@pytest.mark.parametrize(("capacity", "window"), [(0, 60.0), (-1, 60.0), (10, 0.0)])
def test_a_limit_needs_a_capacity_and_a_window(capacity: int, window: float) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Limit("bad", capacity, window)


def test_keys_are_prefixed_by_the_limit_and_fit_the_column() -> None:
    assert PER_MINUTE.key("42") == "api:42"
    assert len(SIGNIN.key("x" * 500)) == 200
