"""The rules a CRM relies on, row by row: the body, its signature, the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from wabroadcast.crm_webhooks.events import (
    RETRY_FOR,
    event_body,
    is_success,
    next_attempt_at,
    retry_wait,
    signature,
    signed_headers,
)

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failed_attempts", "seconds"),
    [(1, 15), (2, 30), (3, 60), (4, 120), (8, 1920), (9, 3840), (10, 7200), (40, 7200)],
)
def test_waits_double_from_15_seconds_to_2_hours(failed_attempts: int, seconds: int) -> None:
    assert retry_wait(failed_attempts) == timedelta(seconds=seconds)


def test_a_wait_follows_a_failure() -> None:
    with pytest.raises(ValueError, match="failed attempt"):
        retry_wait(0)


@pytest.mark.parametrize(
    ("failed_at", "failed_attempts", "expected"),
    [
        (AT, 1, AT + timedelta(seconds=15)),
        (AT + timedelta(hours=23, minutes=30), 20, AT + RETRY_FOR),  # the last, at 24 h
        (AT + timedelta(hours=23, minutes=59, seconds=50), 1, AT + RETRY_FOR),
        (AT + RETRY_FOR, 21, None),  # that one failed too: given up
        (AT + RETRY_FOR + timedelta(seconds=1), 1, None),
    ],
)
def test_retries_go_on_for_24_hours_after_the_event(
    failed_at: datetime, failed_attempts: int, expected: datetime | None
) -> None:
    assert next_attempt_at(AT, failed_attempts, failed_at) == expected


def test_the_signature_is_an_hmac_sha256_of_timestamp_dot_body() -> None:
    body = event_body("evt_1", "broadcast.completed", AT, {"broadcast_id": 7, "note": "שלום"})
    expected = hmac.new(b"s3cret", b"1764000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1764000000, body) == f"sha256={expected}"
    assert signature("s3cret", 1764000001, body) != f"sha256={expected}"
    headers = signed_headers("s3cret", 1764000000, "evt_1", "broadcast.completed", body)
    assert headers["X-Wabroadcast-Signature"] == f"sha256={expected}"
    assert headers["X-Wabroadcast-Timestamp"] == "1764000000"
    assert headers["X-Wabroadcast-Event-Id"] == "evt_1"


def test_the_body_is_the_same_bytes_every_time() -> None:
    data = {"broadcast_id": 7, "status": "partial"}
    first = event_body("evt_1", "broadcast.partial", AT, data)
    assert first == event_body("evt_1", "broadcast.partial", AT, dict(data))
    assert json.loads(first) == {
        "id": "evt_1",
        "type": "broadcast.partial",
        "created_at": "2026-12-06T12:00:00Z",
        "data": data,
    }


@pytest.mark.parametrize(
    ("status", "success"), [(200, True), (204, True), (299, True), (301, False), (500, False)]
)
def test_only_a_2xx_answer_is_a_delivery(status: int, success: bool) -> None:
    assert is_success(status) is success
