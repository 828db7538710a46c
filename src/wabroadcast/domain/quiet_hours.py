"""Quiet hours: a daily window, in a time zone, in which no send starts.

A window is written ``"HH:MM-HH:MM"`` (24-hour clock): ``"21:00-08:30"`` is quiet from
21:00 (inclusive) to 08:30 (exclusive) the next morning; a start after the end crosses
midnight, a start before it stays within one day (``"13:00-14:00"``), and a start
equal to its end is refused (it would mean "never" or "always"). The window is local
wall-clock time: on a DST day it follows the clocks (a window starting in a skipped
hour starts when the clocks jump; its end keeps its local time).

A recipient's zone comes from the country of their number: phonenumbers gives the
region, CLDR (Babel) the region's zones. A region with one zone gets it; a region with
several gets its primary zone from ``PRIMARY_ZONES`` (the zone of the capital or of
most of the population, always one of CLDR's zones for that region), else CLDR's
first zone. A number whose region has no zone loadable here gets None (the
tenant's zone applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel.core import get_global
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

# The broadcast's ``quiet_hours`` that switches the tenant's window off for it.
OFF = "off"
ZONE_TENANT = "tenant"
ZONE_RECIPIENT = "recipient"
ZONE_MODES = (ZONE_TENANT, ZONE_RECIPIENT)
MAX_ZONE_CHARS = 64

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")

# Regions with several CLDR zones: the one their people mostly live by.
PRIMARY_ZONES: dict[str, str] = {
    "AR": "America/Argentina/Buenos_Aires",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CD": "Africa/Kinshasa",
    "CL": "America/Santiago",
    "CN": "Asia/Shanghai",
    "CY": "Asia/Nicosia",
    "DE": "Europe/Berlin",
    "EC": "America/Guayaquil",
    "ES": "Europe/Madrid",
    "FM": "Pacific/Pohnpei",
    "GL": "America/Nuuk",
    "ID": "Asia/Jakarta",
    "KI": "Pacific/Tarawa",
    "KZ": "Asia/Almaty",
    "MH": "Pacific/Majuro",
    "MN": "Asia/Ulaanbaatar",
    "MX": "America/Mexico_City",
    "MY": "Asia/Kuala_Lumpur",
    "NZ": "Pacific/Auckland",
    "PF": "Pacific/Tahiti",
    "PG": "Pacific/Port_Moresby",
    "PS": "Asia/Hebron",
    "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
    "US": "America/New_York",
    "UZ": "Asia/Tashkent",
}


class InvalidQuietHours(ValueError):
    """Not a window ``HH:MM-HH:MM``, or a start equal to its end."""


class InvalidTimeZone(ValueError):
    """Not an IANA time zone known here."""


@dataclass(frozen=True, slots=True)
class QuietWindow:
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def holds_at(self, local: time) -> bool:
        """Whether a local wall-clock time is inside (start inclusive, end exclusive)."""
        if self.crosses_midnight:
            return local >= self.start or local < self.end
        return self.start <= local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(text: str) -> QuietWindow:
    """``"21:00-08:30"`` as a window; InvalidQuietHours with the reason otherwise."""
    found = _WINDOW.match(text.strip())
    if found is None:
        raise InvalidQuietHours("must be HH:MM-HH:MM (24-hour), e.g. 21:00-08:30")
    sh, sm, eh, em = (int(part) for part in found.groups())
    window = QuietWindow(time(sh, sm), time(eh, em))
    if window.start == window.end:
        raise InvalidQuietHours("start and end must differ")
    return window


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; InvalidTimeZone when it is not one."""
    return _zone(name.strip())


@cache
def _zone(name: str) -> ZoneInfo:
    if not name or len(name) > MAX_ZONE_CHARS or name.startswith(("/", ".")) or ".." in name:
        raise InvalidTimeZone(f"{name!r} is not an IANA time zone (e.g. Asia/Jerusalem)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidTimeZone(f"{name!r} is not an IANA time zone (e.g. Asia/Jerusalem)") from exc


class QuietCheck(NamedTuple):
    """A claimed recipient's quiet hours and the zone they are read in."""

    window: QuietWindow
    zone_name: str

    def holds(self, at: datetime) -> bool:
        return is_quiet(self.window, self.zone_name, at)


def is_quiet(window: QuietWindow, zone_name: str, at: datetime) -> bool:
    """Whether the UTC instant ``at`` falls inside ``window`` in the zone."""
    local = at.astimezone(zone(zone_name))
    return window.holds_at(local.time().replace(tzinfo=None))


def quiet_until(window: QuietWindow, zone_name: str, at: datetime) -> datetime | None:
    """When the quiet period holding at ``at`` ends (UTC); None when ``at`` is not quiet.

    The end is the next local ``window.end`` after ``at``; a local time the clocks
    skip (a DST jump) is read with the offset before the jump, so it lands just after.
    """
    if not is_quiet(window, zone_name, at):
        return None
    tz = zone(zone_name)
    local = at.astimezone(tz)
    day = local.date()
    if local.time().replace(tzinfo=None) >= window.end:
        day += timedelta(days=1)
    end = datetime.combine(day, window.end, tzinfo=tz)
    return end.astimezone(UTC)


def next_start(window: QuietWindow, zone_name: str, at: datetime) -> datetime:
    """The next instant after ``at`` (UTC) at which the window begins."""
    tz = zone(zone_name)
    local = at.astimezone(tz)
    for days in range(3):
        begins = datetime.combine(local.date() + timedelta(days=days), window.start, tzinfo=tz)
        if begins.astimezone(UTC) > at:
            return begins.astimezone(UTC)
    raise AssertionError("a daily window begins within three days")  # pragma: no cover


def finish_after_quiet(
    window: QuietWindow, zone_name: str, start: datetime, work: timedelta
) -> datetime:
    """When ``work`` of sending, started at ``start``, ends if it pauses in quiet hours.

    Sends stop at each quiet period and resume at its end, so the finish is pushed by
    every quiet period the work runs into (for an estimate: minutes, not seconds).
    """
    at = quiet_until(window, zone_name, start) or start
    left = work
    for _ in range(10_000):  # at most one quiet period a day: ~27 years of work
        pause = next_start(window, zone_name, at)
        if at + left <= pause:
            return at + left
        left -= pause - at
        resumed = quiet_until(window, zone_name, pause)
        at = pause if resumed is None else resumed
    return at + left


def region_zone(region: str) -> str | None:
    """The zone of a region (ISO 3166 code) by the rule in the module docstring."""
    return _region_zone(region.upper())


@cache
def _region_zone(region: str) -> str | None:
    zones: list[str] = list(get_global("territory_zones").get(region, ()))
    primary = PRIMARY_ZONES.get(region)
    if primary in zones:
        zones.remove(primary)
        zones.insert(0, primary)
    for name in zones:
        try:
            _zone(name)
        except InvalidTimeZone:
            continue
        return name
    return None


def phone_zone(e164: str) -> str | None:
    """The zone of a number in E.164 from its country; None when none is known.

    A calling code of one region (most) needs no parse; a shared one (+1, +7, +44)
    is resolved by phonenumbers from the number itself.
    """
    digits = e164.removeprefix("+")
    for length in (1, 2, 3):
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length] or 0))
        if regions is not None:
            break
    else:
        return None
    if len(regions) == 1:
        region: str | None = regions[0]
    else:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + digits, None))
        except phonenumbers.NumberParseException:
            return None
    if not region or region == "001":
        return None
    return region_zone(region)


@cache
def recipient_zones() -> tuple[str, ...]:
    """Every zone ``phone_zone`` can give a recipient (one per region), sorted."""
    zones = {region_zone(region) for region in get_global("territory_zones")}
    return tuple(sorted(name for name in zones if name is not None))


def window_of(
    broadcast_quiet_hours: str | None, tenant_quiet_hours: str | None
) -> QuietWindow | None:
    """The window a broadcast keeps: its own, none for ``off``, else its tenant's.
    A stored value that no longer parses (never written by this code) counts as none."""
    text = tenant_quiet_hours if broadcast_quiet_hours is None else broadcast_quiet_hours
    if text is None or text == OFF:
        return None
    try:
        return parse_window(text)
    except InvalidQuietHours:
        return None


def safe_zone_name(name: str | None) -> str:
    """A stored zone name, or UTC when it is missing or unknown here."""
    if name:
        try:
            return zone(name).key
        except InvalidTimeZone:
            pass
    return "UTC"
