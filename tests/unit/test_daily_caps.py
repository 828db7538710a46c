"""Daily caps and warm-up: the cap of each calendar day in the tenant's zone, the
provider presets, and when a capped line of sends finishes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from wabroadcast.broadcasts.estimates import (
    DailyCap,
    Estimate,
    InLine,
    SessionPacing,
    WaitingReason,
    estimate,
)
from wabroadcast.domain.daily_caps import (
    CapSettings,
    cap_on,
    day_start,
    effective,
    ever_capped,
    last_send_at,
    local_day,
    zone,
)
from wabroadcast.domain.status import BroadcastStatus
from wabroadcast.providers.registry import daily_cap_preset

CREATED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def settings(
    provider: str = "simulator", messaging_tier: str | None = None, **fields: object
) -> CapSettings:
    """A session's cap settings, with its provider's preset as the plug-in gives it."""
    config = {} if messaging_tier is None else {"messaging_tier": messaging_tier}
    preset = daily_cap_preset(provider, config)
    return CapSettings(created_at=CREATED, preset=preset, **fields)  # type: ignore[arg-type]


def test_simulator_has_no_cap_and_an_explicit_cap_applies() -> None:
    assert cap_on(settings(), date(2026, 11, 5), "UTC") is None
    assert not ever_capped(settings())
    assert cap_on(settings(daily_cap=2), date(2026, 11, 5), "UTC") == 2
    assert ever_capped(settings(daily_cap=2))


def test_zero_turns_a_preset_cap_off() -> None:
    for provider in ("baileys", "waha", "evolution"):
        assert ever_capped(settings(provider))
        assert not ever_capped(settings(provider, daily_cap=0, warmup_days=0))


def test_whatsapp_web_gateways_start_cautious_and_grow_to_their_preset() -> None:
    first = local_day(CREATED, "UTC")
    caps = [cap_on(settings("waha"), first + timedelta(days=n), "UTC") for n in range(9)]
    assert caps == [20, 37, 68, 126, 234, 433, 801, 1_500, 1_500]


def test_the_warm_up_ramp_grows_by_its_factor_until_the_daily_cap() -> None:
    rule = settings(
        daily_cap=100,
        warmup_days=4,
        warmup_start_cap=10,
        warmup_growth=2.0,
        warmup_started_at=datetime(2026, 11, 10, 8, tzinfo=UTC),
    )
    days = [date(2026, 11, 10) + timedelta(days=n) for n in range(-1, 6)]
    # The day before the ramp starts counts as its first day; day 3 hits the daily cap.
    assert [cap_on(rule, d, "UTC") for d in days] == [10, 10, 20, 40, 80, 100, 100]


def test_a_warm_up_without_a_daily_cap_ends_uncapped() -> None:
    rule = settings(daily_cap=0, warmup_days=2, warmup_start_cap=5, warmup_growth=1.5)
    first = local_day(CREATED, "UTC")
    assert [cap_on(rule, first + timedelta(days=n), "UTC") for n in range(3)] == [5, 7, None]
    assert ever_capped(rule)


def test_cloud_api_caps_by_its_messaging_tier() -> None:
    day = date(2026, 11, 5)
    assert cap_on(settings("cloud_api"), day, "UTC") is None
    assert cap_on(settings("cloud_api", messaging_tier="250"), day, "UTC") == 250
    assert cap_on(settings("cloud_api", messaging_tier="10K"), day, "UTC") == 10_000
    assert cap_on(settings("cloud_api", messaging_tier="unlimited"), day, "UTC") is None
    assert cap_on(settings("cloud_api", messaging_tier="1K", daily_cap=300), day, "UTC") == 300


def test_unset_fields_take_the_preset_one_by_one() -> None:
    rule = effective(settings("baileys", daily_cap=300))
    assert (rule.daily_cap, rule.warmup_days, rule.warmup_start_cap) == (300, 7, 20)


def test_days_are_the_tenant_zone_s() -> None:
    # 22:30 UTC is already the next day in Jerusalem (UTC+2 in winter).
    late = datetime(2026, 11, 28, 22, 30, tzinfo=UTC)
    assert local_day(late, "UTC") == date(2026, 11, 28)
    assert local_day(late, "Asia/Jerusalem") == date(2026, 11, 29)
    assert day_start(date(2026, 11, 29), "Asia/Jerusalem") == datetime(
        2026, 11, 28, 22, 0, tzinfo=UTC
    )
    assert str(zone("Not/AZone")) == "UTC"


@pytest.mark.parametrize(
    ("count", "left_today", "expected"),
    [
        (3, None, datetime(2026, 11, 28, 12, 3, tzinfo=UTC)),
        (3, 5, datetime(2026, 11, 28, 12, 3, tzinfo=UTC)),
        # 2 today, then 4 a day: the 3rd..6th tomorrow, the 7th the day after.
        (6, 2, datetime(2026, 11, 29, 0, 4, tzinfo=UTC)),
        (7, 2, datetime(2026, 11, 30, 0, 1, tzinfo=UTC)),
        (402, 2, datetime(2027, 3, 8, 0, 4, tzinfo=UTC)),  # 100 days of 4
        (5, 0, datetime(2026, 11, 30, 0, 1, tzinfo=UTC)),
    ],
)
def test_a_capped_line_finishes_on_the_day_its_last_send_fits(
    count: int, left_today: int | None, expected: datetime
) -> None:
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    found = last_send_at(
        settings(daily_cap=4),
        "UTC",
        count=count,
        start=start,
        gap=timedelta(minutes=1),
        left_today=left_today,
    )
    assert found == expected


def test_a_line_under_warm_up_follows_the_ramp() -> None:
    rule = settings(
        daily_cap=0,
        warmup_days=3,
        warmup_start_cap=1,
        warmup_growth=2.0,
        warmup_started_at=datetime(2026, 11, 28, 0, tzinfo=UTC),
    )
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    # Today 1 (used), tomorrow 2, then 4, then no cap.
    found = last_send_at(rule, "UTC", count=10, start=start, gap=timedelta(0), left_today=0)
    assert found == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert last_send_at(
        rule, "UTC", count=6, start=start, gap=timedelta(0), left_today=0
    ) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def test_an_estimate_waits_for_the_next_day_when_today_is_used_up() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    capped = DailyCap(settings(daily_cap=2), "UTC", left_today=0)
    session = SessionPacing(timedelta(0), None, True, capped)
    found = estimate(
        status=BroadcastStatus.RUNNING, send_at=None, pending=3, ahead=[], session=session, now=now
    )
    # 2 go tomorrow, the last the day after.
    assert found == Estimate(datetime(2026, 11, 30, 0, 0, tzinfo=UTC), WaitingReason.DAILY_CAP)


def test_an_estimate_behind_an_older_broadcast_counts_the_cap_too() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    capped = DailyCap(settings(daily_cap=2), "UTC", left_today=1)
    session = SessionPacing(timedelta(seconds=1), None, True, capped)
    found = estimate(
        status=BroadcastStatus.QUEUED,
        send_at=None,
        pending=2,
        ahead=[InLine(1, 1)],
        session=session,
        now=now,
    )
    # The older one takes today's last send; these two go tomorrow.
    assert found == Estimate(
        datetime(2026, 11, 29, 0, 0, 2, tzinfo=UTC), WaitingReason.BEHIND_BROADCAST, 1
    )
