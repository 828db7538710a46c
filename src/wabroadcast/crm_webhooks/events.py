"""What a CRM is told and how: event names, the body, its signature, the retry schedule.

Pure functions, so the rules the CRM relies on (docs/guarantees.md) are tested row
by row: the body is the same on every attempt (same event id), the signature is
Stripe's scheme (HMAC-SHA256 of ``<timestamp>.<body>``), and a delivery is retried
with growing delays for 24 hours, its last attempt at the 24th hour.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from wabroadcast.domain.status import BroadcastStatus


class EventType(StrEnum):
    BROADCAST_QUEUED = "broadcast.queued"
    BROADCAST_PAUSED = "broadcast.paused"
    BROADCAST_COMPLETED = "broadcast.completed"
    BROADCAST_PARTIAL = "broadcast.partial"
    BROADCAST_FAILED = "broadcast.failed"
    BROADCAST_CANCELLED = "broadcast.cancelled"
    RECIPIENT_FAILED = "recipient.failed"
    RECIPIENT_REPLIED = "recipient.replied"
    RECIPIENT_OPTED_OUT = "recipient.opted_out"


# The broadcast statuses a CRM hears about, each as its own event.
BROADCAST_STATUS_EVENTS: dict[BroadcastStatus, EventType] = {
    BroadcastStatus.QUEUED: EventType.BROADCAST_QUEUED,
    BroadcastStatus.PAUSED: EventType.BROADCAST_PAUSED,
    BroadcastStatus.COMPLETED: EventType.BROADCAST_COMPLETED,
    BroadcastStatus.PARTIAL: EventType.BROADCAST_PARTIAL,
    BroadcastStatus.FAILED: EventType.BROADCAST_FAILED,
    BroadcastStatus.CANCELLED: EventType.BROADCAST_CANCELLED,
}


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    # Given up: every attempt for 24 hours failed.
    FAILED = "failed"
    # Its subscription was deleted before it was delivered.
    CANCELLED = "cancelled"


SIGNATURE_HEADER = "X-Wabroadcast-Signature"
TIMESTAMP_HEADER = "X-Wabroadcast-Timestamp"
EVENT_ID_HEADER = "X-Wabroadcast-Event-Id"
EVENT_TYPE_HEADER = "X-Wabroadcast-Event-Type"

# Retries: 15 s after the first failure, doubling up to 2 hours apart, for 24 hours.
FIRST_RETRY = timedelta(seconds=15)
LONGEST_WAIT = timedelta(hours=2)
RETRY_FOR = timedelta(hours=24)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def new_secret() -> str:
    """A signing secret for a subscription whose creator gave none."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def event_body(event_id: str, event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    """The JSON body of an event: byte for byte the same on every attempt."""
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": created_at.isoformat().replace("+00:00", "Z"),
            "data": data,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Wabroadcast-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of
    ``<timestamp>.<body>`` under the subscription's secret."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, timestamp: int, event_id: str, event_type: str, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
    }


def retry_wait(failed_attempts: int) -> timedelta:
    """How long after its ``failed_attempts``-th failure a delivery is tried again."""
    if failed_attempts < 1:
        raise ValueError("a wait follows a failed attempt")
    doublings = min(failed_attempts - 1, 20)
    wait: timedelta = FIRST_RETRY * 2**doublings
    return min(wait, LONGEST_WAIT)


def next_attempt_at(created_at: datetime, failed_attempts: int, now: datetime) -> datetime | None:
    """When to try a delivery again after a failure at ``now``, or None to give up.

    Retries go on for ``RETRY_FOR`` after the event; the last one is made at that
    moment even when the schedule would wait past it, and if it fails too the
    delivery is given up.
    """
    deadline = created_at + RETRY_FOR
    if now >= deadline:
        return None
    return min(now + retry_wait(failed_attempts), deadline)


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300
