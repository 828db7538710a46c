"""The send result → recipient status decision (dispatch/outcome.py), row by row."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from wabroadcast.dispatch import outcome
from wabroadcast.dispatch.outcome import (
    UNKNOWN_OUTCOME,
    UNKNOWN_OUTCOME_MESSAGE,
    OutcomeRules,
    orphan_result,
    result_for,
)
from wabroadcast.dispatch.repository.rows import Claimed, Result
from wabroadcast.dispatch.retry import RetryPolicy
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.providers.base import SendOutcome, SendResult

R = RecipientStatus
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
EPOCH = 7
# No jitter: a retry after attempt n waits exactly base * 2^(n-1) seconds.
RULES = OutcomeRules(
    RetryPolicy(max_attempts=3, base_s=2.0, cap_s=300.0, jitter=0.0),
    hold=timedelta(seconds=60),
    rng=random.Random(1),
)


def _item(attempts: int) -> Claimed:
    return Claimed(11, 22, "+972501234567", "hi", attempts, f"wab-11-{attempts}")


def _after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


SENT = SendResult(SendOutcome.SENT, provider_message_id="p-1")
LATER = SendResult(SendOutcome.RETRY_LATER, error_code="RATE_LIMITED", error_message="Slow down.")
REFUSED = SendResult(SendOutcome.FAILED, error_code="NOT_ON_WHATSAPP", error_message="No WhatsApp.")
OFFLINE = SendResult(
    SendOutcome.DISCONNECTED, error_code="SESSION_DISCONNECTED", error_message="Off."
)
BLOCKED = SendResult(
    SendOutcome.ACCOUNT_BLOCKED, error_code="RESTRICTED", error_message="Restricted."
)
UNKNOWN = SendResult(
    SendOutcome.RETRY_LATER, error_code=UNKNOWN_OUTCOME, error_message="Call failed."
)


def _result(status: RecipientStatus, **fields: object) -> Result:
    return Result(11, 22, EPOCH, status, **fields)  # type: ignore[arg-type]


# (answer, attempts used, unknown, idempotent) -> the result recorded.
ROWS: list[tuple[str, SendResult, int, bool, bool, Result]] = [
    ("sent", SENT, 1, False, True, _result(R.SENT, provider_message_id="p-1")),
    ("sent, last attempt", SENT, 3, False, False, _result(R.SENT, provider_message_id="p-1")),
    (
        "refused: fails at once, whatever the attempts left",
        REFUSED,
        1,
        False,
        True,
        _result(R.FAILED, error_code="NOT_ON_WHATSAPP", error_message="No WhatsApp."),
    ),
    (
        "transient: retried after the backoff, a new client id",
        LATER,
        1,
        False,
        True,
        _result(
            R.QUEUED,
            error_code="RATE_LIMITED",
            error_message="Slow down.",
            next_attempt_at=_after(2),
        ),
    ),
    (
        "transient, second attempt: the backoff doubles",
        LATER,
        2,
        False,
        True,
        _result(
            R.QUEUED,
            error_code="RATE_LIMITED",
            error_message="Slow down.",
            next_attempt_at=_after(4),
        ),
    ),
    (
        "transient, attempts used up: gives up with the last error",
        LATER,
        3,
        False,
        True,
        _result(
            R.FAILED,
            error_code="RATE_LIMITED",
            error_message="Slow down. Gave up after 3 attempts.",
        ),
    ),
    (
        "disconnected: held, its attempt given back",
        OFFLINE,
        3,
        False,
        True,
        _result(
            R.QUEUED,
            error_code="SESSION_DISCONNECTED",
            error_message="Off.",
            next_attempt_at=_after(60),
            refund_attempt=True,
        ),
    ),
    (
        "account blocked: held like a disconnect (the broadcast pauses)",
        BLOCKED,
        1,
        False,
        True,
        _result(
            R.QUEUED,
            error_code="RESTRICTED",
            error_message="Restricted.",
            next_attempt_at=_after(60),
            refund_attempt=True,
        ),
    ),
    (
        "unknown, repeats ignored: retried with the same client id",
        UNKNOWN,
        1,
        True,
        True,
        _result(
            R.QUEUED,
            error_code=UNKNOWN_OUTCOME,
            error_message="Call failed.",
            next_attempt_at=_after(2),
            keep_client_message_id=True,
        ),
    ),
    (
        "unknown, repeats ignored, attempts used up: gives up",
        UNKNOWN,
        3,
        True,
        True,
        _result(
            R.FAILED,
            error_code=UNKNOWN_OUTCOME,
            error_message="Call failed. Gave up after 3 attempts.",
        ),
    ),
    (
        "unknown, repeats not ignored: never sent again",
        UNKNOWN,
        1,
        True,
        False,
        _result(R.FAILED, error_code=UNKNOWN_OUTCOME, error_message=UNKNOWN_OUTCOME_MESSAGE),
    ),
]


@pytest.mark.parametrize(
    ("answer", "attempts", "unknown", "idempotent", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_each_answer_gives_its_result(
    answer: SendResult, attempts: int, unknown: bool, idempotent: bool, expected: Result
) -> None:
    result = result_for(
        _item(attempts), answer, EPOCH, T0, RULES, unknown=unknown, idempotent=idempotent
    )
    assert result == expected


def test_a_jittered_backoff_stays_within_its_jitter() -> None:
    rules = OutcomeRules(RetryPolicy(base_s=10.0, jitter=0.2), timedelta(0), random.Random(3))
    for _ in range(50):
        result = result_for(_item(1), LATER, EPOCH, T0, rules, unknown=False, idempotent=True)
        assert result.next_attempt_at is not None
        assert _after(8) <= result.next_attempt_at <= _after(12)


@pytest.mark.parametrize(
    ("answer", "pauses", "stops"),
    [
        (SENT, False, False),
        (LATER, False, False),
        (REFUSED, False, False),
        (OFFLINE, False, True),
        (BLOCKED, True, True),
    ],
)
def test_which_answers_pause_or_stop_the_session(
    answer: SendResult, pauses: bool, stops: bool
) -> None:
    assert outcome.pauses(answer) is pauses
    assert outcome.stops_session(answer) is stops


@pytest.mark.parametrize(
    ("idempotent", "attempts", "status", "message"),
    [
        (True, 1, R.QUEUED, outcome.RETRIED_WITH_SAME_ID_MESSAGE),
        (True, 3, R.FAILED, UNKNOWN_OUTCOME_MESSAGE),
        (False, 1, R.FAILED, UNKNOWN_OUTCOME_MESSAGE),
    ],
)
def test_an_orphan_is_retried_with_its_id_only_where_repeats_are_harmless(
    idempotent: bool, attempts: int, status: RecipientStatus, message: str
) -> None:
    result = orphan_result(11, 22, attempts, idempotent=idempotent, retry=RULES.retry)
    assert result == Result(
        11,
        22,
        0,
        status,
        error_code=UNKNOWN_OUTCOME,
        error_message=message,
        keep_client_message_id=True,
    )


def test_only_a_retry_that_uses_an_attempt_counts_as_one() -> None:
    def decide(answer: SendResult) -> Result:
        return result_for(_item(1), answer, EPOCH, T0, RULES, unknown=False, idempotent=True)

    assert outcome.is_retry(decide(LATER))
    assert not outcome.is_retry(decide(OFFLINE))
    assert not outcome.is_retry(decide(SENT))
    assert not outcome.is_retry(decide(REFUSED))


def test_a_failed_call_stands_for_an_unknown_answer() -> None:
    answer = outcome.unknown_answer(ConnectionResetError("x" * 1000))
    assert (answer.outcome, answer.error_code) == (SendOutcome.RETRY_LATER, UNKNOWN_OUTCOME)
    assert answer.error_message is not None
    assert answer.error_message.startswith("The provider call failed: ConnectionResetError(")
    assert len(answer.error_message) == 500
