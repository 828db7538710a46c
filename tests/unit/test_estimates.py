"""The estimate and waiting reason of a broadcast: the rule row by row, then properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wabroadcast.broadcasts.estimates import (
    NO_ESTIMATE,
    Estimate,
    InLine,
    SessionPacing,
    WaitingReason,
    ahead_of,
    estimate,
    mean_gap,
)
from wabroadcast.client import waiting_line
from wabroadcast.domain.status import BroadcastStatus
from wabroadcast.providers.base import Pace

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
GAP = timedelta(seconds=7.5)  # 8 a minute
B = BroadcastStatus
W = WaitingReason


def session(
    next_in_s: float | None = None, connected: bool | None = True, gap: timedelta = GAP
) -> SessionPacing:
    next_send_at = None if next_in_s is None else T0 + timedelta(seconds=next_in_s)
    return SessionPacing(gap, next_send_at, connected)


def run(
    status: BroadcastStatus,
    pending: int = 10,
    ahead: list[InLine] | None = None,
    pacing: SessionPacing | None = None,
    send_at: datetime | None = None,
) -> Estimate:
    return estimate(
        status=status,
        send_at=send_at,
        pending=pending,
        ahead=ahead or [],
        session=pacing or session(),
        now=T0,
    )


def test_mean_gap_is_the_interval_plus_half_the_jitter_and_zero_unpaced() -> None:
    assert mean_gap(Pace(rate_per_minute=8, jitter_ms=0)) == timedelta(seconds=7.5)
    assert mean_gap(Pace(rate_per_minute=60, jitter_ms=1000)) == timedelta(seconds=1.5)
    assert mean_gap(Pace(rate_per_minute=0, jitter_ms=1000)) == timedelta(0)


def test_ahead_are_the_older_broadcasts_with_something_left_oldest_first() -> None:
    line = [InLine(9, 4), InLine(3, 2), InLine(5, 0), InLine(12, 7), InLine(7, 1)]
    assert ahead_of(9, line) == [InLine(3, 2), InLine(7, 1)]
    assert ahead_of(3, line) == []


def test_a_broadcast_alone_on_its_session_sends_at_the_pace() -> None:
    assert run(B.RUNNING, 10) == Estimate(T0 + 10 * GAP)
    assert run(B.QUEUED, 1000).estimated_finish_at == T0 + timedelta(hours=2, minutes=5)


def test_the_pace_turn_in_the_near_future_is_still_sending() -> None:
    assert run(B.RUNNING, 4, pacing=session(next_in_s=7)) == Estimate(
        T0 + timedelta(seconds=7) + 4 * GAP
    )


def test_a_turn_far_ahead_is_waiting_for_the_pace() -> None:
    slow = session(next_in_s=60, gap=timedelta(minutes=1))
    assert run(B.RUNNING, 2, pacing=slow) == Estimate(T0 + timedelta(minutes=3), WaitingReason.PACE)


def test_a_turn_in_the_past_counts_from_now() -> None:
    assert run(B.RUNNING, 2, pacing=session(next_in_s=-3600)) == Estimate(T0 + 2 * GAP)


def test_behind_an_older_broadcast_waits_for_the_one_sent_now() -> None:
    ahead = [InLine(3, 5), InLine(4, 20)]
    assert run(B.QUEUED, 10, ahead) == Estimate(T0 + 35 * GAP, W.BEHIND_BROADCAST, 3)


def test_an_older_broadcast_with_nothing_left_is_not_ahead() -> None:
    assert run(B.QUEUED, 10, [InLine(3, 0)]) == Estimate(T0 + 10 * GAP)


def test_not_connected_has_no_estimate_and_wins_over_being_behind() -> None:
    offline = session(connected=False)
    assert run(B.RUNNING, 10, [InLine(1, 5)], offline) == Estimate(waiting_reason=W.NOT_CONNECTED)
    assert run(B.QUEUED, 10, pacing=session(connected=None)) == Estimate(T0 + 10 * GAP)


def test_paused_has_its_reason_and_no_estimate() -> None:
    assert run(B.PAUSED, 10, [InLine(1, 5)]) == Estimate(waiting_reason=W.PAUSED)
    assert run(B.PAUSED, pacing=session(connected=False)).waiting_reason is W.PAUSED


def test_scheduled_starts_at_send_at_or_when_the_older_ones_are_done() -> None:
    later = T0 + timedelta(hours=1)
    assert run(B.SCHEDULED, 10, send_at=later) == Estimate(later + 10 * GAP, W.SCHEDULED)
    busy = [InLine(1, 1000)]  # 2 h 5 min of sends ahead
    assert run(B.SCHEDULED, 10, busy, send_at=later) == Estimate(T0 + 1010 * GAP, W.SCHEDULED)
    offline = session(connected=False)
    assert run(B.SCHEDULED, 1, pacing=offline, send_at=later).waiting_reason is W.SCHEDULED


@pytest.mark.parametrize("status", [B.ACCEPTED, B.COMPLETED, B.PARTIAL, B.FAILED, B.CANCELLED])
def test_not_active_reports_nothing(status: BroadcastStatus) -> None:
    assert run(status, 10, [InLine(1, 5)], send_at=T0) == NO_ESTIMATE


def test_nothing_left_to_send_finishes_now() -> None:
    assert run(B.RUNNING, 0, [InLine(1, 5)]) == Estimate(T0)


def test_unpaced_finishes_at_the_next_turn() -> None:
    assert run(B.RUNNING, 500, pacing=session(gap=timedelta(0))) == Estimate(T0)


# Deterministic: the same examples on every run.
PROPERTY = settings(derandomize=True, database=None, max_examples=300)
statuses = st.sampled_from(list(BroadcastStatus))
pendings = st.integers(min_value=0, max_value=100_000)
lines = st.lists(
    st.builds(InLine, st.integers(1, 1000), st.integers(0, 10_000)),
    max_size=8,
    unique_by=lambda b: b.broadcast_id,
)
pacings = st.builds(
    SessionPacing,
    st.integers(0, 3_600_000).map(lambda ms: timedelta(milliseconds=ms)),
    st.one_of(st.none(), st.integers(-7200, 7200).map(lambda s: T0 + timedelta(seconds=s))),
    st.one_of(st.none(), st.booleans()),
)
send_ats = st.one_of(st.none(), st.integers(-3600, 86400).map(lambda s: T0 + timedelta(seconds=s)))


def finish(
    status: BroadcastStatus,
    pending: int,
    ahead: list[InLine],
    pacing: SessionPacing,
    send_at: datetime | None,
) -> datetime | None:
    return run(status, pending, ahead, pacing, send_at).estimated_finish_at


@PROPERTY
@given(
    statuses,
    pendings,
    lines,
    pacings,
    send_ats,
    st.builds(InLine, st.integers(1, 1000), st.integers(1, 10_000)),
)
def test_more_ahead_never_finishes_earlier(
    status: BroadcastStatus,
    pending: int,
    ahead: list[InLine],
    pacing: SessionPacing,
    send_at: datetime | None,
    extra: InLine,
) -> None:
    before = finish(status, pending, ahead, pacing, send_at)
    after = finish(status, pending, [*ahead, extra], pacing, send_at)
    if before is not None and after is not None:
        assert after >= before
    assert (before is None) == (after is None)


@PROPERTY
@given(statuses, pendings, lines, pacings, send_ats, st.integers(1, 10_000))
def test_more_of_its_own_never_finishes_earlier(
    status: BroadcastStatus,
    pending: int,
    ahead: list[InLine],
    pacing: SessionPacing,
    send_at: datetime | None,
    more: int,
) -> None:
    before = finish(status, pending, ahead, pacing, send_at)
    after = finish(status, pending + more, ahead, pacing, send_at)
    if before is not None and after is not None:
        assert after >= before


@PROPERTY
@given(statuses, pendings, lines, pacings, send_ats)
def test_an_estimate_is_never_in_the_past_nor_before_send_at(
    status: BroadcastStatus,
    pending: int,
    ahead: list[InLine],
    pacing: SessionPacing,
    send_at: datetime | None,
) -> None:
    found = run(status, pending, ahead, pacing, send_at)
    if found.estimated_finish_at is not None:
        assert found.estimated_finish_at >= T0
        if status is B.SCHEDULED and send_at is not None:
            assert found.estimated_finish_at >= send_at + pending * pacing.gap


@PROPERTY
@given(statuses, pendings, lines, pacings, send_ats)
def test_reasons_follow_the_status(
    status: BroadcastStatus,
    pending: int,
    ahead: list[InLine],
    pacing: SessionPacing,
    send_at: datetime | None,
) -> None:
    found = run(status, pending, ahead, pacing, send_at)
    if status not in {B.SCHEDULED, B.QUEUED, B.RUNNING, B.PAUSED}:
        assert found == NO_ESTIMATE
    if status is B.SCHEDULED:
        assert found.waiting_reason is W.SCHEDULED
    if status is B.PAUSED:
        assert found == Estimate(waiting_reason=W.PAUSED)
    # Only a broadcast behind another names one, and always the oldest one ahead.
    if found.waiting_reason is W.BEHIND_BROADCAST:
        assert found.waiting_for_broadcast_id == min(b.broadcast_id for b in ahead if b.pending > 0)
    else:
        assert found.waiting_for_broadcast_id is None


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        (
            {"waiting_reason": "behind_broadcast", "waiting_for_broadcast_id": 12},
            "waiting: behind broadcast 12 · estimated finish 14:05 UTC",
        ),
        ({"waiting_reason": None}, "sending · estimated finish 14:05 UTC"),
        (
            {"waiting_reason": "pace", "estimated_finish_at": "2026-12-07T09:30:00Z"},
            "waiting: the session's sending pace · estimated finish 2026-12-07 09:30 UTC",
        ),
        (
            {"waiting_reason": "scheduled", "send_at": "2026-12-06T15:00:00+02:00"},
            "waiting: scheduled for 13:00 UTC · estimated finish 14:05 UTC",
        ),
        (
            {"waiting_reason": "not_connected", "estimated_finish_at": None},
            "waiting: the WhatsApp session is not connected",
        ),
        ({"waiting_reason": "paused", "estimated_finish_at": None}, "waiting: paused"),
        ({"waiting_reason": None, "estimated_finish_at": None}, None),
    ],
)
def test_the_cli_says_why_and_when_in_one_line(fields: dict[str, object], line: str | None) -> None:
    state = {
        "estimated_finish_at": "2026-12-06T14:05:41.5Z",
        "waiting_for_broadcast_id": None,
        "send_at": None,
        **fields,
    }
    assert waiting_line(state, now=T0) == line
