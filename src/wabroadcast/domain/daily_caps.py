"""How many sends a session may start on one calendar day: its daily cap and warm-up.

A number that suddenly sends hundreds of messages a day gets restricted or
banned, above all through the unofficial WhatsApp Web gateways (users report
24-hour restrictions after 30-40 messages to new contacts); a new number is
safer when its volume grows day by day. So each session has a cap per calendar
day of its tenant's time zone, and a warm-up ramp: on day ``n`` since the ramp
started (its ``warmup_started_at``, else the session's creation), the cap is
``warmup_start_cap * warmup_growth ** n`` (rounded down, at least 1) for
``warmup_days`` days, never above the daily cap; after that the daily cap.

A setting left unset (None) takes the provider's preset, field by field; each
provider's plug-in gives its own (``ProviderPlugin.daily_cap_preset``): the WhatsApp
Web gateways start cautious, the Cloud API follows the number's messaging tier, the
simulator has none.

``daily_cap`` 0 means no cap; ``warmup_days`` 0 means no warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Growth per warm-up day when neither the session nor its provider sets one.
DEFAULT_WARMUP_GROWTH = 1.5


@dataclass(frozen=True, slots=True)
class Preset:
    """A provider's cap settings: ``daily_cap`` 0 is no cap, ``warmup_days`` 0 no warm-up."""

    daily_cap: int = 0
    warmup_days: int = 0
    warmup_start_cap: int = 0
    warmup_growth: float = DEFAULT_WARMUP_GROWTH


NO_CAP = Preset()


@dataclass(frozen=True, slots=True)
class CapSettings:
    """A session's cap settings as stored (None: the provider's preset)."""

    created_at: datetime
    # What the session's provider gives for the fields left unset.
    preset: Preset = NO_CAP
    daily_cap: int | None = None
    warmup_days: int | None = None
    warmup_start_cap: int | None = None
    warmup_growth: float | None = None
    warmup_started_at: datetime | None = None


def effective(settings: CapSettings) -> Preset:
    """The session's settings with each unset one taken from its provider's preset."""
    preset = settings.preset
    return Preset(
        daily_cap=preset.daily_cap if settings.daily_cap is None else settings.daily_cap,
        warmup_days=preset.warmup_days if settings.warmup_days is None else settings.warmup_days,
        warmup_start_cap=preset.warmup_start_cap
        if settings.warmup_start_cap is None
        else settings.warmup_start_cap,
        warmup_growth=preset.warmup_growth
        if settings.warmup_growth is None
        else settings.warmup_growth,
    )


def _warms_up(rule: Preset) -> bool:
    return rule.warmup_days > 0 and rule.warmup_start_cap > 0


def ever_capped(settings: CapSettings) -> bool:
    """Whether any day of the session has a cap; False lets the dispatcher skip the
    counters altogether (the simulator, ``daily_cap`` 0 without a warm-up)."""
    rule = effective(settings)
    return rule.daily_cap > 0 or _warms_up(rule)


def zone(name: str | None) -> ZoneInfo:
    """The tenant's IANA zone; UTC when it is unset or unknown here."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(at: datetime, zone_name: str | None) -> date:
    """The calendar day ``at`` falls on in the zone."""
    return at.astimezone(zone(zone_name)).date()


def day_start(day: date, zone_name: str | None) -> datetime:
    """When ``day`` begins in the zone, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone(zone_name)).astimezone(UTC)


def warmup_day(settings: CapSettings, day: date, zone_name: str | None) -> int:
    """Which day of its warm-up ``day`` is (0: the day it started; never negative)."""
    started = settings.warmup_started_at or settings.created_at
    return max(0, (day - local_day(started, zone_name)).days)


def cap_on(settings: CapSettings, day: date, zone_name: str | None) -> int | None:
    """How many sends the session may start on ``day``; None: no cap."""
    rule = effective(settings)
    if _warms_up(rule):
        n = warmup_day(settings, day, zone_name)
        if n < rule.warmup_days:
            ramp = max(1, math.floor(rule.warmup_start_cap * rule.warmup_growth**n))
            return min(ramp, rule.daily_cap) if rule.daily_cap > 0 else ramp
    return rule.daily_cap if rule.daily_cap > 0 else None


def _last_ramp_day(settings: CapSettings, zone_name: str | None) -> date:
    """The first day from which the cap no longer changes."""
    started = settings.warmup_started_at or settings.created_at
    return local_day(started, zone_name) + timedelta(days=max(0, effective(settings).warmup_days))


def last_send_at(
    settings: CapSettings,
    zone_name: str | None,
    *,
    count: int,
    start: datetime,
    gap: timedelta,
    left_today: int | None,
) -> datetime:
    """When the ``count``-th send from ``start`` goes out, ``gap`` apart, when only
    ``left_today`` (None: any number) may go today and each later day's cap from
    that day's start in the tenant's zone."""
    if left_today is None or count <= left_today:
        return start + max(0, count) * gap
    remaining = count - max(0, left_today)
    day = local_day(start, zone_name) + timedelta(days=1)
    steady_from = _last_ramp_day(settings, zone_name)
    while True:
        cap = cap_on(settings, day, zone_name)
        if cap is None or remaining <= cap:
            return day_start(day, zone_name) + remaining * gap
        if day >= steady_from:
            # The cap no longer changes: skip the full days at once.
            full_days = math.ceil(remaining / cap) - 1
            day += timedelta(days=full_days)
            remaining -= full_days * cap
            return day_start(day, zone_name) + remaining * gap
        remaining -= cap
        day += timedelta(days=1)
