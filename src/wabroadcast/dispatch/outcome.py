"""What a send's answer means for its recipient: status, attempts, retry time, pause.

Pure: the rules, the time and the random numbers come in as arguments, so each
row of the decision is tested on its own (tests/unit/test_dispatch_outcome.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from wabroadcast.dispatch.repository.rows import Claimed, Result
from wabroadcast.dispatch.retry import RetryPolicy
from wabroadcast.domain.status import RecipientStatus
from wabroadcast.providers.base import SendOutcome, SendResult

UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
UNKNOWN_OUTCOME_MESSAGE = (
    "The worker stopped during the send, so it is unknown whether WhatsApp received the "
    "message; it is not sent again automatically, so it cannot arrive twice."
)
RETRIED_WITH_SAME_ID_MESSAGE = (
    "The worker stopped during the send; retrying with the same "
    "message id, which WhatsApp will not deliver twice."
)
# Not the recipient's fault, and nothing was sent: held without using an attempt.
HOLDING_OUTCOMES = frozenset({SendOutcome.DISCONNECTED, SendOutcome.ACCOUNT_BLOCKED})


@dataclass(frozen=True, slots=True)
class OutcomeRules:
    """What decides a result besides the send: the retry policy, how long a disconnected
    session's recipients are held, and the random numbers of the backoff's jitter."""

    retry: RetryPolicy
    hold: timedelta
    rng: random.Random


def sent(item: Claimed, answer: SendResult, epoch: int) -> Result:
    """The result of a send WhatsApp accepted."""
    return Result(
        item.recipient_id,
        item.broadcast_id,
        epoch,
        RecipientStatus.SENT,
        provider_message_id=answer.provider_message_id,
    )


def result_for(
    item: Claimed,
    answer: SendResult,
    epoch: int,
    now: datetime,
    rules: OutcomeRules,
    *,
    unknown: bool,
    idempotent: bool,
) -> Result:
    """The result to record for ``item`` claimed under ``epoch``, given the provider's
    ``answer``; ``unknown`` when the call failed without saying whether the message
    left, ``idempotent`` when the provider ignores a repeated client message id."""
    if answer.outcome is SendOutcome.SENT:
        return sent(item, answer, epoch)
    ids = (item.recipient_id, item.broadcast_id, epoch)
    if answer.outcome is SendOutcome.FAILED or (unknown and not idempotent):
        message = UNKNOWN_OUTCOME_MESSAGE if unknown else answer.error_message
        return Result(
            *ids, RecipientStatus.FAILED, error_code=answer.error_code, error_message=message
        )
    if answer.outcome in HOLDING_OUTCOMES:
        return Result(
            *ids,
            RecipientStatus.QUEUED,
            error_code=answer.error_code,
            error_message=answer.error_message,
            next_attempt_at=now + rules.hold,
            refund_attempt=True,
        )
    if rules.retry.exhausted(item.attempts):
        return Result(
            *ids,
            RecipientStatus.FAILED,
            error_code=answer.error_code,
            error_message=f"{answer.error_message} Gave up after {item.attempts} attempts.",
        )
    return Result(
        *ids,
        RecipientStatus.QUEUED,
        error_code=answer.error_code,
        error_message=answer.error_message,
        next_attempt_at=rules.retry.next_attempt_at(now, item.attempts, rules.rng),
        keep_client_message_id=unknown,
    )


def orphan_result(
    recipient_id: int, broadcast_id: int, attempts: int, *, idempotent: bool, retry: RetryPolicy
) -> Result:
    """A recipient left ``sending`` by a dead worker: retried with the same client message
    id where a repeat is harmless and attempts remain, otherwise failed as unknown."""
    again = idempotent and not retry.exhausted(attempts)
    return Result(
        recipient_id,
        broadcast_id,
        epoch=0,
        status=RecipientStatus.QUEUED if again else RecipientStatus.FAILED,
        error_code=UNKNOWN_OUTCOME,
        keep_client_message_id=True,
        error_message=RETRIED_WITH_SAME_ID_MESSAGE if again else UNKNOWN_OUTCOME_MESSAGE,
    )


def is_retry(result: Result) -> bool:
    """A result that sends the recipient again later, using an attempt (for the metrics)."""
    return result.status is RecipientStatus.QUEUED and not result.refund_attempt


def pauses(answer: SendResult) -> bool:
    """An account-level error: the session's broadcasts pause instead of going on."""
    return answer.outcome is SendOutcome.ACCOUNT_BLOCKED


def stops_session(answer: SendResult) -> bool:
    """The session can send nothing more now (disconnected, or its account blocked)."""
    return answer.outcome in HOLDING_OUTCOMES


def unknown_answer(exc: Exception) -> SendResult:
    """Stands for the answer of a provider call that failed: the messages may have left."""
    return SendResult(
        SendOutcome.RETRY_LATER,
        error_code=UNKNOWN_OUTCOME,
        error_message=f"The provider call failed: {exc!r}"[:500],
    )
