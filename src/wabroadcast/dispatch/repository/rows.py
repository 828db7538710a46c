"""The rows the dispatcher claims and the results it writes, shared by its repositories."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from wabroadcast.domain.quiet_hours import QuietCheck
from wabroadcast.domain.status import RecipientStatus

# Counter moves per broadcast, for ``broadcasts.repository.counts.shift_counts``.
Moves = dict[int, dict[tuple[RecipientStatus, RecipientStatus], int]]


class Claimed(NamedTuple):
    """A recipient committed as ``sending`` under a lease epoch, ready for its provider call.

    A named tuple, not a frozen dataclass: a worker makes tens of thousands of these
    (and of ``Result``) a second, and a frozen dataclass takes four times as long to
    build (each field is set through ``object.__setattr__``).
    """

    recipient_id: int
    broadcast_id: int
    phone: str
    message: str
    attempts: int
    client_message_id: str
    # When the recipient became due (queued, or its retry time): the queue wait starts here.
    due_at: datetime | None = None
    # The broadcast's provider template, if it has one.
    template: dict[str, Any] | None = None
    # Its quiet hours, checked again just before its send (None: it has none).
    quiet: QuietCheck | None = None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim up to ``limit`` recipients of ``session_id`` under lease ``epoch``."""

    session_id: str
    epoch: int
    limit: int


class Result(NamedTuple):
    """What to record for one claimed recipient; written only if its epoch still matches."""

    recipient_id: int
    broadcast_id: int
    epoch: int
    status: RecipientStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None
    refund_attempt: bool = False
    keep_client_message_id: bool = False


def add_move(
    moves: Moves, broadcast_id: int, old: RecipientStatus, new: RecipientStatus, count: int = 1
) -> None:
    pairs = moves.setdefault(broadcast_id, defaultdict(int))
    pairs[(old, new)] += count
