"""The simulated WhatsApp's rules: its scenario, its error codes and what it answers.

Pure (no I/O), so what the simulator does with a message is tested row by row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from wabroadcast.providers.base import OutgoingMessage, SendOutcome

KIND = "simulator"
DEFAULT_DELIVER_AFTER_MS = 2000

# The simulator's error codes and how each must be treated: the same table
# shape every provider module has for its own codes.
ERRORS: dict[str, tuple[SendOutcome, str]] = {
    "NOT_ON_WHATSAPP": (SendOutcome.FAILED, "This number is not on WhatsApp."),
    "INVALID_NUMBER": (SendOutcome.FAILED, "WhatsApp rejected the number as invalid."),
    "BLOCKED_BY_RECIPIENT": (SendOutcome.FAILED, "The recipient blocked this WhatsApp number."),
    "TIMEOUT": (SendOutcome.RETRY_LATER, "The gateway timed out before the message left."),
    "CONNECTION_REFUSED": (SendOutcome.RETRY_LATER, "The gateway refused the connection."),
    "RATE_LIMITED": (SendOutcome.RETRY_LATER, "WhatsApp asked us to slow down (429)."),
    "SERVER_ERROR": (SendOutcome.RETRY_LATER, "The gateway failed with a server error (5xx)."),
    "SESSION_DISCONNECTED": (SendOutcome.DISCONNECTED, "The WhatsApp session is not connected."),
    "ACCOUNT_RESTRICTED": (
        SendOutcome.ACCOUNT_BLOCKED,
        "WhatsApp restricted this account; sending is paused.",
    ),
    "SPAM_FLAGGED": (
        SendOutcome.ACCOUNT_BLOCKED,
        "WhatsApp flagged this account for spam; sending is paused.",
    ),
}
NOT_ON_WHATSAPP = "NOT_ON_WHATSAPP"
# What a failure drawn by ``fail_rate`` looks like: transient, so it is retried.
RANDOM_FAILURE_CODE = "SERVER_ERROR"


def classify(code: str) -> tuple[SendOutcome, str]:
    """How to treat a simulator error code; unknown codes are permanent failures."""
    return ERRORS.get(code, (SendOutcome.FAILED, f"WhatsApp refused the message ({code})."))


def fails_by_rate(client_message_id: str, fail_rate: float) -> bool:
    """Whether ``fail_rate`` fails this attempt: a deterministic draw per message id.

    Deterministic so a test or bench with a failure rate gives the same
    outcome every run, whichever worker or order the sends happen in.
    """
    if fail_rate <= 0:
        return False
    digest = hashlib.sha256(f"fail-rate:{client_message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fail_rate


@dataclass(slots=True)
class Scenario:
    """What the simulated WhatsApp of one session does."""

    connected: bool = True
    status_delay_ms: int = 0
    latency_ms: int = 0
    fail_numbers: dict[str, str] = field(default_factory=dict)
    fail_rate: float = 0.0
    deliver_after_ms: int | None = DEFAULT_DELIVER_AFTER_MS


class ScenarioFields(Protocol):
    """What a scenario is built from: its stored row, or a row of those columns."""

    connected: bool
    status_delay_ms: int
    latency_ms: int
    fail_numbers: dict[str, str]
    fail_rate: float
    deliver_after_ms: int | None


def scenario_from_row(row: ScenarioFields) -> Scenario:
    """The scenario of a stored row (an ORM object, or a row of its columns)."""
    return Scenario(
        connected=row.connected,
        status_delay_ms=row.status_delay_ms,
        latency_ms=row.latency_ms,
        fail_numbers=dict(row.fail_numbers),
        fail_rate=row.fail_rate,
        deliver_after_ms=row.deliver_after_ms,
    )


def decide(
    scenario: Scenario, message: OutgoingMessage, repeat: bool
) -> tuple[SendOutcome, str | None]:
    """What the simulated WhatsApp answers; a repeat is acknowledged, never sent again."""
    if repeat:
        return SendOutcome.SENT, None
    to, client_message_id = message.to, message.client_message_id
    if to in scenario.fail_numbers:
        code = scenario.fail_numbers[to]
        return classify(code)[0], code
    if fails_by_rate(client_message_id, scenario.fail_rate):
        return classify(RANDOM_FAILURE_CODE)[0], RANDOM_FAILURE_CODE
    return SendOutcome.SENT, None


def not_on_whatsapp(scenario: Scenario, phone: str) -> bool:
    """Whether a number check says ``phone`` is not on WhatsApp: the scenario fails it
    with ``NOT_ON_WHATSAPP``."""
    return scenario.fail_numbers.get(phone) == NOT_ON_WHATSAPP


def deliver_at(
    scenario: Scenario, outcome: SendOutcome, repeat: bool, at: datetime
) -> datetime | None:
    """When the "delivered" receipt of a send is due, if it gets one."""
    if outcome is not SendOutcome.SENT or repeat or scenario.deliver_after_ms is None:
        return None
    return at + timedelta(milliseconds=scenario.deliver_after_ms)
