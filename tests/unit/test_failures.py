"""Which failed recipients "retry failed" sends again, row by row."""

from __future__ import annotations

import pytest

from wabroadcast.dispatch import outcome
from wabroadcast.domain.failures import (
    NAMED_ONLY_CODES,
    NEVER_PASSING_CODES,
    UNKNOWN_OUTCOME,
    may_pass,
    retryable_codes,
)
from wabroadcast.providers.base import SendOutcome
from wabroadcast.providers.simulator.rules import ERRORS


@pytest.mark.parametrize(
    ("code", "named", "expected"),
    [
        # Passing conditions, attempts used up, failed deliveries: sent again.
        ("RATE_LIMITED", None, True),
        ("SERVER_ERROR", None, True),
        ("TIMEOUT", None, True),
        ("META_130429", None, True),
        ("EVOLUTION_HTTP_500", None, True),
        ("DELIVERY_FAILED", None, True),
        ("ACCOUNT_RESTRICTED", None, True),
        ("META_132001", None, True),  # a template since fixed
        (None, None, True),
        # Never passes, named or not.
        ("NOT_ON_WHATSAPP", None, False),
        ("NOT_ON_WHATSAPP", frozenset({"NOT_ON_WHATSAPP"}), False),
        ("INVALID_NUMBER", None, False),
        ("BLOCKED_BY_RECIPIENT", None, False),
        ("META_131026", None, False),
        ("META_131050", None, False),
        ("META_131051", None, False),
        # WhatsApp may have it already: only when named.
        (UNKNOWN_OUTCOME, None, False),
        (UNKNOWN_OUTCOME, frozenset(), False),
        (UNKNOWN_OUTCOME, frozenset({UNKNOWN_OUTCOME}), True),
        # A filter takes only what it names; no code cannot be named.
        ("RATE_LIMITED", frozenset({"RATE_LIMITED"}), True),
        ("SERVER_ERROR", frozenset({"RATE_LIMITED"}), False),
        (None, frozenset({"RATE_LIMITED"}), False),
        ("SERVER_ERROR", frozenset(), True),
    ],
)
def test_may_pass(code: str | None, named: frozenset[str] | None, expected: bool) -> None:
    assert may_pass(code, named) is expected


def test_retryable_codes_of_a_broadcast() -> None:
    found = ["NOT_ON_WHATSAPP", "RATE_LIMITED", UNKNOWN_OUTCOME, None]
    assert retryable_codes(found) == {"RATE_LIMITED", None}
    assert retryable_codes(found, []) == {"RATE_LIMITED", None}
    assert retryable_codes(found, ["NOT_ON_WHATSAPP", "NOPE"]) == set()
    assert retryable_codes(found, [UNKNOWN_OUTCOME, "RATE_LIMITED"]) == {
        UNKNOWN_OUTCOME,
        "RATE_LIMITED",
    }


def test_the_rule_agrees_with_the_dispatcher_and_the_simulator() -> None:
    assert UNKNOWN_OUTCOME == outcome.UNKNOWN_OUTCOME
    assert not NEVER_PASSING_CODES & NAMED_ONLY_CODES
    # The simulator's passing conditions may pass; its final refusals never do.
    for code, (kind, _) in ERRORS.items():
        if kind is SendOutcome.FAILED:
            assert not may_pass(code), code
        else:
            assert may_pass(code), code
