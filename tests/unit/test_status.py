"""The status tables: what is allowed, and that everything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wabroadcast.dispatch.repository.lifecycle import FINISHING_FROM, RUNNING_FROM
from wabroadcast.domain.errors import InvalidStatusTransition
from wabroadcast.domain.status import (
    BROADCAST_TRANSITIONS,
    FINAL_BROADCAST_STATUSES,
    RECIPIENT_TRANSITIONS,
    SETTLED_BROADCAST_STATUSES,
    BroadcastStatus,
    RecipientStatus,
    can_transition,
    ensure_transition,
    final_broadcast_status,
    sources_of,
)

B = BroadcastStatus
R = RecipientStatus


def test_tables_cover_every_status() -> None:
    assert set(BROADCAST_TRANSITIONS) == set(B)
    assert set(RECIPIENT_TRANSITIONS) == set(R)


def test_seed_progressions_are_allowed() -> None:
    for a, b in [
        (B.ACCEPTED, B.QUEUED),
        (B.QUEUED, B.RUNNING),
        (B.RUNNING, B.COMPLETED),
        (B.RUNNING, B.PARTIAL),
        (B.RUNNING, B.FAILED),
    ]:
        assert can_transition(a, b)
    for c, d in [
        (R.QUEUED, R.SENDING),
        (R.SENDING, R.SENT),
        (R.SENT, R.DELIVERED),
        (R.DELIVERED, R.READ),
        (R.SENDING, R.FAILED),
        (R.SENT, R.FAILED),
    ]:
        assert can_transition(c, d)


def test_final_broadcast_statuses_only_move_among_settled_outcomes() -> None:
    assert {B.COMPLETED, B.PARTIAL, B.FAILED, B.CANCELLED} == FINAL_BROADCAST_STATUSES
    assert {B.COMPLETED, B.PARTIAL, B.FAILED} == SETTLED_BROADCAST_STATUSES
    assert not any(can_transition(B.CANCELLED, other) for other in B)
    for settled in SETTLED_BROADCAST_STATUSES:
        reachable = {other for other in B if can_transition(settled, other)}
        # A late receipt may change the outcome; only an operator's "retry failed" runs
        # it again (never paused, queued or cancelled from here).
        assert reachable == (SETTLED_BROADCAST_STATUSES - {settled}) | {B.RUNNING}


def test_receipts_never_move_a_recipient_backwards() -> None:
    order = [R.QUEUED, R.SENDING, R.SENT, R.DELIVERED, R.READ]
    for i, later in enumerate(order):
        for earlier in order[:i]:
            if (later, earlier) == (R.SENDING, R.QUEUED):
                continue  # an unknown-outcome retry re-queues; the only backward edge
            assert not can_transition(later, earlier), (later, earlier)


@given(st.sampled_from(list(B)), st.sampled_from(list(B)))
def test_broadcast_transition_matches_table(current: BroadcastStatus, new: BroadcastStatus) -> None:
    allowed = new in BROADCAST_TRANSITIONS[current]
    assert can_transition(current, new) is allowed
    if allowed:
        ensure_transition(current, new)
    else:
        with pytest.raises(InvalidStatusTransition) as info:
            ensure_transition(current, new)
        assert info.value.details == {"from": current.value, "to": new.value}


@given(st.sampled_from(list(R)), st.sampled_from(list(R)))
def test_recipient_transition_matches_table(current: RecipientStatus, new: RecipientStatus) -> None:
    allowed = new in RECIPIENT_TRANSITIONS[current]
    assert can_transition(current, new) is allowed
    if not allowed:
        with pytest.raises(InvalidStatusTransition):
            ensure_transition(current, new)


@given(st.sampled_from(list(B)), st.sampled_from(list(R)))
def test_mixing_kinds_is_refused(b: BroadcastStatus, r: RecipientStatus) -> None:
    assert not can_transition(b, r)
    assert not can_transition(r, b)


def test_staying_put_is_not_a_transition() -> None:
    assert not any(can_transition(s, s) for s in B)
    assert not any(can_transition(s, s) for s in R)


def test_sources_of_inverts_the_table() -> None:
    assert sources_of(R.SENT) == {R.SENDING}
    assert sources_of(R.DELIVERED) == {R.SENDING, R.SENT, R.FAILED}
    assert sources_of(B.RUNNING) == {B.QUEUED, B.PAUSED} | SETTLED_BROADCAST_STATUSES
    assert sources_of(R.QUEUED) == {R.SENDING, R.FAILED}


def test_the_dispatcher_never_runs_a_settled_broadcast_again() -> None:
    assert set(RUNNING_FROM) == {B.QUEUED, B.PAUSED}
    assert set(FINISHING_FROM) == {B.RUNNING, B.PAUSED}


@pytest.mark.parametrize(
    ("sent", "failed", "expected"),
    [(3, 0, B.COMPLETED), (2, 1, B.PARTIAL), (0, 3, B.FAILED), (0, 0, B.FAILED)],
)
def test_final_status_is_computed_from_counts(
    sent: int, failed: int, expected: BroadcastStatus
) -> None:
    assert final_broadcast_status(sent, failed) is expected
