"""The dashboard's pure display rules: the schedule field, compact times, phones, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wabroadcast.broadcasts.schemas import BroadcastOut
from wabroadcast.domain.status import BroadcastStatus
from wabroadcast.web.forms import DraftProblem, scheduled_time
from wabroadcast.web.rendering import bidi, compact_utc, international, progress_of

NOW = datetime(2026, 12, 6, 13, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local", "offset", "expected"),
    [
        ("", "120", None),
        ("2026-12-24T09:00", "120", datetime(2026, 12, 24, 7, 0, tzinfo=UTC)),
        ("2026-12-24T09:00", "-300", datetime(2026, 12, 24, 14, 0, tzinfo=UTC)),
        ("2026-12-24T09:00", "", datetime(2026, 12, 24, 9, 0, tzinfo=UTC)),
        ("2026-12-24T09:00:30", "0", datetime(2026, 12, 24, 9, 0, 30, tzinfo=UTC)),
    ],
)
def test_the_schedule_field_is_local_time_at_the_offset_given(
    local: str, offset: str, expected: datetime | None
) -> None:
    assert scheduled_time(local, offset) == expected


@pytest.mark.parametrize(
    ("local", "offset"),
    [
        ("tomorrow", ""),
        ("2026-12-24T09:00", "two hours"),
        ("2026-12-24T09:00", "900"),  # past UTC+14:00
        ("2026-12-24T09:00+02:00", ""),  # the offset comes from its own field
    ],
)
def test_a_schedule_that_cannot_be_read_is_a_problem_to_show(local: str, offset: str) -> None:
    with pytest.raises(DraftProblem) as problem:
        scheduled_time(local, offset)
    assert problem.value.text_key == "error.send_at_unreadable"


def test_times_show_their_date_only_when_it_is_not_today_or_the_one_before() -> None:
    assert compact_utc(NOW - timedelta(hours=2), NOW) == "11:30:00 UTC"
    yesterday = NOW - timedelta(days=1)
    assert compact_utc(yesterday, NOW) == "2026-12-05 13:30:00 UTC"
    assert compact_utc(yesterday + timedelta(minutes=1), NOW, yesterday) == "13:31:00 UTC"
    assert compact_utc(NOW, None) == "2026-12-06 13:30:00 UTC"
    elsewhere = NOW.astimezone(timezone(timedelta(hours=-10)))
    assert compact_utc(elsewhere, NOW) == "13:30:00 UTC"


def test_phones_are_shown_in_international_format() -> None:
    assert international("+972502345678") == "+972 50-234-5678"
    assert international("+14155552671") == "+1 415-555-2671"
    assert international("not a phone") == "not a phone"


def test_isolates_follow_the_direction_asked_for() -> None:
    assert bidi("WhatsApp הגביל", "rtl") == "\u2067WhatsApp הגביל\u2069"
    assert bidi("business_1", "ltr") == "\u2066business_1\u2069"
    assert bidi("WhatsApp restricted") == "\u2068WhatsApp restricted\u2069"


def _broadcast(**counts: int) -> BroadcastOut:
    return BroadcastOut(
        broadcast_id=1,
        status=BroadcastStatus.CANCELLED,
        status_reason=None,
        message="m",
        session_id="s",
        total_recipients=3,
        queued_count=0,
        sent_count=counts.get("sent", 0),
        delivered_count=0,
        read_count=0,
        failed_count=counts.get("failed", 0),
        cancelled_count=counts.get("cancelled", 0),
        invalid_recipients_count=0,
        duplicates_removed=0,
        created_at=NOW,
        queued_at=NOW,
        started_at=None,
        finished_at=NOW,
        updated_at=NOW,
    )


def test_a_cancelled_broadcast_is_not_shown_as_done() -> None:
    cancelled = progress_of(_broadcast(cancelled=3))
    assert (cancelled.done, cancelled.percent, cancelled.cancelled_count) == (0, 0, 3)
    assert cancelled.cancelled == 100.0
    partly = progress_of(_broadcast(sent=1, failed=1, cancelled=1))
    assert (partly.done, partly.percent, partly.sent, partly.cancelled) == (2, 66, 33.333, 33.333)
