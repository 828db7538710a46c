"""Turning what a CRM posts into the list of people we will actually message.

Pure and CPU-bound: phone normalization and de-duplication run here, away from
I/O, so the API can run them off the event loop and tests can check them alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from wabroadcast.domain.phones import InvalidPhone, normalize_phone

INPUT_ECHO_CHARS = 64


@dataclass(frozen=True, slots=True)
class RecipientInput:
    phone: str
    lead_id: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ValidRecipient:
    raw_input: str
    phone: str
    lead_id: int | None
    name: str | None


@dataclass(frozen=True, slots=True)
class RejectedRecipient:
    input: str
    reason: str


@dataclass(slots=True)
class PreparedRecipients:
    valid: list[ValidRecipient] = field(default_factory=list)
    invalid: list[RejectedRecipient] = field(default_factory=list)
    duplicates_removed: int = 0

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.invalid))


def echo_input(raw: str) -> str:
    """The caller's input as we repeat it back: bounded, so a huge string cannot bloat replies."""
    return raw if len(raw) <= INPUT_ECHO_CHARS else raw[: INPUT_ECHO_CHARS - 1] + "…"


def prepare_recipients(items: Iterable[RecipientInput], region: str) -> PreparedRecipients:
    """Normalize every phone to E.164 and keep the first occurrence of each number."""
    prepared = PreparedRecipients()
    seen: set[str] = set()
    for item in items:
        result = normalize_phone(item.phone, region)
        if isinstance(result, InvalidPhone):
            prepared.invalid.append(RejectedRecipient(echo_input(item.phone), result.reason.value))
            continue
        if result.e164 in seen:
            prepared.duplicates_removed += 1
            continue
        seen.add(result.e164)
        prepared.valid.append(
            ValidRecipient(echo_input(item.phone), result.e164, item.lead_id, item.name)
        )
    return prepared
