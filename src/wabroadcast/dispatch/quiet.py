"""Quiet hours at claim time: which sendable broadcasts may start sends now.

The claim reads each broadcast's ``quiet_hours`` and ``quiet_hours_zone`` with its
tenant's ``time_zone`` and ``quiet_hours`` (``QUIET_COLUMNS``, the last columns of its
row). A broadcast whose window holds now in the tenant's zone is left out of the
claim entirely. One in ``recipient`` mode stays, with the zones quiet now: its
recipients in those zones (and those without a zone, when the tenant's zone is
quiet) are not claimed. No window: nothing changes.

A claimed recipient may wait for its send (its session's pace, the batch before
it), so each carries its window (``Watch``) and the slot checks it again just
before handing it to the provider: one whose quiet hours began meanwhile goes
back to the queue unsent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wabroadcast.db.models import Tenant, WhatsAppBroadcast
from wabroadcast.domain.quiet_hours import (
    ZONE_RECIPIENT,
    QuietCheck,
    QuietWindow,
    is_quiet,
    recipient_zones,
    safe_zone_name,
    window_of,
)

QUIET_COLUMNS = (
    WhatsAppBroadcast.quiet_hours,
    WhatsAppBroadcast.quiet_hours_zone,
    Tenant.time_zone,
    Tenant.quiet_hours,
)


@dataclass(frozen=True, slots=True)
class QuietZones:
    """Recipients not to claim now: those in ``zones``, and with ``unzoned`` those
    without a zone (they keep the tenant's)."""

    zones: tuple[str, ...]
    unzoned: bool


@dataclass(frozen=True, slots=True)
class Watch:
    """The window a claimed broadcast keeps, checked again just before each send: the
    zone is the tenant's, or (``by_recipient``) each recipient's where it has one."""

    window: QuietWindow
    tenant_zone: str
    by_recipient: bool

    def for_recipient(self, time_zone: str | None) -> QuietCheck:
        """What one claimed recipient of the broadcast checks before its send."""
        zone_name = time_zone if self.by_recipient and time_zone else self.tenant_zone
        return QuietCheck(self.window, zone_name)


def awake(
    rows: Sequence[Any], now: datetime
) -> tuple[list[Any], dict[int, QuietZones], dict[int, Watch]]:
    """The rows (without ``QUIET_COLUMNS``) of broadcasts that may send now, the quiet
    zones of those in recipient mode, and the window of each kept one that has one,
    by broadcast id (the row's first column)."""
    kept: list[Any] = []
    quiet: dict[int, QuietZones] = {}
    watched: dict[int, Watch] = {}
    extra = len(QUIET_COLUMNS)
    for row in rows:
        own, zone_mode, tenant_zone, tenant_window = row[-extra:]
        head = tuple(row[:-extra])
        window = window_of(own, tenant_window)
        if window is None:
            kept.append(head)
            continue
        zone_name = safe_zone_name(tenant_zone)
        by_recipient = zone_mode == ZONE_RECIPIENT
        if not by_recipient:
            if not is_quiet(window, zone_name, now):
                kept.append(head)
                watched[int(head[0])] = Watch(window, zone_name, by_recipient)
            continue
        zones = tuple(z for z in recipient_zones() if is_quiet(window, z, now))
        unzoned = is_quiet(window, zone_name, now)
        if zones or unzoned:
            quiet[int(head[0])] = QuietZones(zones, unzoned)
        kept.append(head)
        watched[int(head[0])] = Watch(window, zone_name, by_recipient)
    return kept, quiet, watched
