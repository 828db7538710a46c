"""Quiet hours: the window's edges, midnight, DST days, and the zone of a number."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.core import get_global
from hypothesis import given, settings
from hypothesis import strategies as st

from wabroadcast.broadcasts.estimates import (
    Estimate,
    QuietHours,
    SessionPacing,
    WaitingReason,
    estimate,
)
from wabroadcast.domain.quiet_hours import (
    PRIMARY_ZONES,
    InvalidQuietHours,
    InvalidTimeZone,
    QuietWindow,
    finish_after_quiet,
    is_quiet,
    parse_window,
    phone_zone,
    quiet_until,
    region_zone,
    zone,
)
from wabroadcast.domain.status import BroadcastStatus

PROPERTY = settings(derandomize=True, database=None, max_examples=300)
JERUSALEM = "Asia/Jerusalem"
NIGHT = parse_window("21:00-08:30")


def local(text: str, zone_name: str = JERUSALEM) -> datetime:
    """A local wall-clock time as the UTC instant the dispatcher sees."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone_name)).astimezone(UTC)


def test_parse_window() -> None:
    assert parse_window("21:00-08:30") == QuietWindow(time(21), time(8, 30))
    assert parse_window(" 13:00-14:00 ").crosses_midnight is False
    assert NIGHT.crosses_midnight is True
    assert str(NIGHT) == "21:00-08:30"


@pytest.mark.parametrize(
    "text", ["", "21:00", "21-08", "24:00-08:00", "21:60-08:00", "9:00-10:00", "08:00-08:00"]
)
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(InvalidQuietHours):
        parse_window(text)


def test_zone_refuses_unknown() -> None:
    assert zone("Asia/Jerusalem").key == "Asia/Jerusalem"
    for bad in ("Mars/Olympus", "", "../etc/passwd", "x" * 65):
        with pytest.raises(InvalidTimeZone):
            zone(bad)


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        ("2026-12-06T20:59:59", False),
        ("2026-12-06T21:00:00", True),
        ("2026-12-06T23:59:59", True),
        ("2026-12-07T00:00:00", True),
        ("2026-12-07T08:29:59", True),
        ("2026-12-07T08:30:00", False),
        ("2026-12-07T12:00:00", False),
    ],
)
def test_edges_across_midnight(at: str, quiet: bool) -> None:
    assert is_quiet(NIGHT, JERUSALEM, local(at)) is quiet


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        ("2026-12-06T12:59:59", False),
        ("2026-12-06T13:00:00", True),
        ("2026-12-06T13:59:59", True),
        ("2026-12-06T14:00:00", False),
        ("2026-12-06T00:00:00", False),
    ],
)
def test_edges_within_a_day(at: str, quiet: bool) -> None:
    assert is_quiet(parse_window("13:00-14:00"), JERUSALEM, local(at)) is quiet


def test_quiet_until() -> None:
    assert quiet_until(NIGHT, JERUSALEM, local("2026-12-06T20:59:59")) is None
    ends = local("2026-12-07T08:30:00")
    assert quiet_until(NIGHT, JERUSALEM, local("2026-12-06T21:00:00")) == ends
    assert quiet_until(NIGHT, JERUSALEM, local("2026-12-07T03:00:00")) == ends
    assert quiet_until(NIGHT, JERUSALEM, local("2026-12-07T08:29:59")) == ends


def test_dst_day_follows_the_clocks() -> None:
    # Israel moves its clocks forward on 2026-03-27 at 02:00 (to 03:00): the window's
    # end stays 08:30 local, which is an hour earlier in UTC than the day before.
    before = quiet_until(NIGHT, JERUSALEM, local("2026-03-25T23:00:00"))
    across = quiet_until(NIGHT, JERUSALEM, local("2026-03-26T23:00:00"))
    assert before == datetime(2026, 3, 26, 6, 30, tzinfo=UTC)
    assert across == datetime(2026, 3, 27, 5, 30, tzinfo=UTC)
    assert is_quiet(NIGHT, JERUSALEM, datetime(2026, 3, 27, 5, 29, 59, tzinfo=UTC))
    assert not is_quiet(NIGHT, JERUSALEM, datetime(2026, 3, 27, 5, 30, tzinfo=UTC))
    # A window starting in the skipped hour starts when the clocks jump.
    skipped = parse_window("02:30-04:00")
    assert is_quiet(skipped, JERUSALEM, local("2026-03-27T03:00:00"))
    assert not is_quiet(skipped, JERUSALEM, local("2026-03-27T01:59:59"))


def test_finish_after_quiet_skips_the_night() -> None:
    start = local("2026-12-06T20:00:00")
    # Two hours of sending from 20:00: one before the window, one after 08:30.
    assert finish_after_quiet(NIGHT, JERUSALEM, start, timedelta(hours=2)) == local(
        "2026-12-07T09:30:00"
    )
    # Started inside the window: from its end.
    inside = local("2026-12-07T02:00:00")
    assert finish_after_quiet(NIGHT, JERUSALEM, inside, timedelta(minutes=5)) == local(
        "2026-12-07T08:35:00"
    )
    assert finish_after_quiet(NIGHT, JERUSALEM, start, timedelta(minutes=30)) == local(
        "2026-12-06T20:30:00"
    )


windows = st.builds(
    lambda s, e: QuietWindow(time(s // 60, s % 60), time(e // 60, e % 60)),
    st.integers(0, 1439),
    st.integers(0, 1439),
).filter(lambda w: w.start != w.end)
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
zones = st.sampled_from(["Asia/Jerusalem", "UTC", "America/New_York", "Australia/Sydney"])


@PROPERTY
@given(windows, zones, instants)
def test_quiet_until_is_the_first_awake_instant(
    window: QuietWindow, zone_name: str, at: datetime
) -> None:
    ends = quiet_until(window, zone_name, at)
    if ends is None:
        assert not is_quiet(window, zone_name, at)
        return
    assert is_quiet(window, zone_name, at)
    assert ends > at
    assert not is_quiet(window, zone_name, ends)
    assert is_quiet(window, zone_name, ends - timedelta(seconds=1))


@PROPERTY
@given(windows, zones, instants, st.integers(0, 3 * 24 * 3600))
def test_finish_is_never_early_and_awake(
    window: QuietWindow, zone_name: str, at: datetime, seconds: int
) -> None:
    work = timedelta(seconds=seconds)
    finish = finish_after_quiet(window, zone_name, at, work)
    assert finish >= at + work


def test_zone_of_a_number() -> None:
    assert phone_zone("+972502345678") == "Asia/Jerusalem"
    assert phone_zone("+12125550123") == "America/New_York"
    assert phone_zone("+79161234567") == "Europe/Moscow"
    assert phone_zone("+4915112345678") == "Europe/Berlin"
    assert phone_zone("+5511912345678") == "America/Sao_Paulo"
    assert phone_zone("+999123") is None


def test_primary_zones_are_cldr_zones_of_their_region() -> None:
    territory_zones = get_global("territory_zones")
    for region, name in PRIMARY_ZONES.items():
        assert name in territory_zones[region], region
        assert region_zone(region) == name
    assert region_zone("IL") == "Asia/Jerusalem"
    assert region_zone("ZZZ") is None


def _estimate_at(
    status: BroadcastStatus, now: datetime, send_at: datetime | None = None
) -> Estimate:
    """60 recipients at one a minute, keeping the night window in Jerusalem."""
    return estimate(
        status=status,
        send_at=send_at,
        pending=60,
        ahead=[],
        session=SessionPacing(timedelta(minutes=1), None, True),
        now=now,
        quiet=QuietHours(NIGHT, JERUSALEM),
    )


def test_estimate_inside_quiet_hours_waits_for_their_end() -> None:
    found = _estimate_at(BroadcastStatus.RUNNING, local("2026-12-06T22:00:00"))
    assert found.waiting_reason is WaitingReason.QUIET_HOURS
    # An hour of sending from 08:30.
    assert found.estimated_finish_at == local("2026-12-07T09:30:00")


def test_estimate_running_into_quiet_hours_is_pushed_past_them() -> None:
    found = _estimate_at(BroadcastStatus.RUNNING, local("2026-12-06T20:30:00"))
    assert found.waiting_reason is None
    # 30 minutes before 21:00, the other 30 from 08:30.
    assert found.estimated_finish_at == local("2026-12-07T09:00:00")


def test_scheduled_into_quiet_hours_starts_at_their_end() -> None:
    found = _estimate_at(
        BroadcastStatus.SCHEDULED,
        local("2026-12-06T12:00:00"),
        send_at=local("2026-12-06T23:00:00"),
    )
    assert found.waiting_reason is WaitingReason.SCHEDULED
    assert found.estimated_finish_at == local("2026-12-07T09:30:00")
