"""Broadcast and recipient statuses, and the only transitions allowed between them.

The transition tables are data so that every write can be checked against one
source of truth, and so tests can prove that anything outside them is refused.
Peers lose messages or resend them when a "finished" campaign is restarted or a
receipt moves a message backwards; refusing those edges here prevents both.
"""

from __future__ import annotations

from enum import StrEnum
from typing import overload

from wabroadcast.domain.errors import InvalidStatusTransition


class BroadcastStatus(StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Never sent: its number opted out while it waited (error_code ``opted_out``).
    SKIPPED = "skipped"


_B = BroadcastStatus
_R = RecipientStatus

BROADCAST_TRANSITIONS: dict[BroadcastStatus, frozenset[BroadcastStatus]] = {
    # Accepted with a ``send_at``: it waits as scheduled instead of being queued.
    _B.ACCEPTED: frozenset({_B.QUEUED, _B.SCHEDULED, _B.CANCELLED}),
    # The dispatcher queues it once its ``send_at`` has come; an operator may cancel it
    # before. No edge to paused: resuming would queue it before its time.
    _B.SCHEDULED: frozenset({_B.QUEUED, _B.CANCELLED}),
    _B.QUEUED: frozenset({_B.RUNNING, _B.PAUSED, _B.CANCELLED}),
    _B.RUNNING: frozenset({_B.PAUSED, _B.COMPLETED, _B.PARTIAL, _B.FAILED, _B.CANCELLED}),
    # A paused broadcast whose last sends in flight were written has nothing left to
    # send: it finishes like a running one.
    _B.PAUSED: frozenset(
        {_B.QUEUED, _B.RUNNING, _B.COMPLETED, _B.PARTIAL, _B.FAILED, _B.CANCELLED}
    ),
    # A finished broadcast sends nothing more by itself, but a late receipt (a failure
    # after "sent", a delivery after an unknown outcome) changes its counts, and its
    # outcome follows them (``settled_status``) among these three. It runs again only
    # when an operator re-queues failed recipients ("retry failed",
    # ``broadcasts.control.retry_failed``): the dispatcher never moves a settled
    # broadcast to running (``dispatch.repository.lifecycle.RUNNING_FROM`` leaves them out).
    _B.COMPLETED: frozenset({_B.PARTIAL, _B.FAILED, _B.RUNNING}),
    _B.PARTIAL: frozenset({_B.COMPLETED, _B.FAILED, _B.RUNNING}),
    _B.FAILED: frozenset({_B.COMPLETED, _B.PARTIAL, _B.RUNNING}),
    _B.CANCELLED: frozenset(),
}

RECIPIENT_TRANSITIONS: dict[RecipientStatus, frozenset[RecipientStatus]] = {
    _R.QUEUED: frozenset({_R.SENDING, _R.FAILED, _R.CANCELLED, _R.SKIPPED}),
    # A send with an unknown outcome may be retried (back to queued), and a
    # receipt may overtake the send's own response.
    _R.SENDING: frozenset({_R.QUEUED, _R.SENT, _R.DELIVERED, _R.READ, _R.FAILED}),
    # A late "failed" receipt can still arrive after the provider accepted the send.
    _R.SENT: frozenset({_R.DELIVERED, _R.READ, _R.FAILED}),
    _R.DELIVERED: frozenset({_R.READ}),
    _R.READ: frozenset(),
    # A receipt for a message we gave up on (UNKNOWN_OUTCOME) proves it arrived; an
    # operator's "retry failed" queues a failure that may pass again (``domain.failures``).
    _R.FAILED: frozenset({_R.QUEUED, _R.DELIVERED, _R.READ}),
    _R.CANCELLED: frozenset(),
    # Final: an opt-out removed later is not a reason to message the number after all.
    _R.SKIPPED: frozenset(),
}

# Outcomes of a broadcast that ran to its end; receipts may move it among them.
SETTLED_BROADCAST_STATUSES = frozenset({_B.COMPLETED, _B.PARTIAL, _B.FAILED})
# Nothing more is sent for these (an operator cannot resume them; "retry failed" may
# run a settled one again).
FINAL_BROADCAST_STATUSES = SETTLED_BROADCAST_STATUSES | {_B.CANCELLED}
# Not finished: a scheduled broadcast holds its session and counts as active.
ACTIVE_BROADCAST_STATUSES = frozenset({_B.SCHEDULED, _B.QUEUED, _B.RUNNING, _B.PAUSED})
PENDING_RECIPIENT_STATUSES = frozenset({_R.QUEUED, _R.SENDING})

AnyStatus = BroadcastStatus | RecipientStatus


def can_transition(current: AnyStatus, new: AnyStatus) -> bool:
    """Whether ``current -> new`` is an edge of the status table (staying put is not)."""
    if isinstance(current, BroadcastStatus) and isinstance(new, BroadcastStatus):
        return new in BROADCAST_TRANSITIONS[current]
    if isinstance(current, RecipientStatus) and isinstance(new, RecipientStatus):
        return new in RECIPIENT_TRANSITIONS[current]
    return False


def ensure_transition(current: AnyStatus, new: AnyStatus) -> None:
    """Raise ``InvalidStatusTransition`` unless ``current -> new`` is allowed."""
    if not can_transition(current, new):
        raise InvalidStatusTransition(
            f"status cannot move from {current.value} to {new.value}",
            details={"from": current.value, "to": new.value},
        )


@overload
def sources_of(new: BroadcastStatus) -> frozenset[BroadcastStatus]: ...
@overload
def sources_of(new: RecipientStatus) -> frozenset[RecipientStatus]: ...
def sources_of(new: AnyStatus) -> frozenset[BroadcastStatus] | frozenset[RecipientStatus]:
    """Every status that may move to ``new``; used to fence conditional UPDATEs in SQL."""
    if isinstance(new, BroadcastStatus):
        return frozenset(s for s, targets in BROADCAST_TRANSITIONS.items() if new in targets)
    return frozenset(s for s, targets in RECIPIENT_TRANSITIONS.items() if new in targets)


def final_broadcast_status(sent: int, failed: int, skipped: int = 0) -> BroadcastStatus:
    """The status a broadcast ends in once nothing is queued or sending.

    Computed from counts, never guessed: all sent -> completed, none sent ->
    failed, a mix -> partial. Cancelled recipients count as neither. ``sent``
    counts sent, delivered and read. Skipped recipients (opted out) were left out on
    purpose: with nothing failed they make it completed, even when none was sent.
    The same rule keeps a finished broadcast's status in step with its counts when
    late receipts change them (``broadcasts.repository.counts.resettle``).
    """
    if (sent or skipped) and not failed:
        return BroadcastStatus.COMPLETED
    if sent:
        return BroadcastStatus.PARTIAL
    return BroadcastStatus.FAILED
