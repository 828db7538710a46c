"""When a broadcast will finish, and why it is not sending now: one pure rule.

A broadcast can sit at 0 % for hours for reasons the operator cannot see: another
broadcast is ahead of it on the same WhatsApp session, the session sends 8 messages
a minute, it is scheduled, paused, or the phone is not connected. This module turns
what is stored about the session and its line of broadcasts into the three fields
every active broadcast reports (``estimated_finish_at``, ``waiting_reason``,
``waiting_for_broadcast_id``).

The model, as the dispatcher serves a session (``dispatch.repository.claims``):

* A session sends one stream at its pace; its broadcasts in ``queued`` or
  ``running`` are served oldest (lowest id) first, a younger one only getting what
  the older ones leave. So the broadcasts *ahead* of one are the older sendable
  broadcasts of its session with recipients still queued or sending.
* ``gap`` is the mean time between two sends (the pace's interval plus half its
  jitter; zero when unpaced). The stream starts at the later of now and the
  session's ``next_send_at`` (its GCRA turn). The estimate is when the session's
  pace lets the send after the broadcast's last one go::

      finish = start + (pending ahead + own pending) * gap

  which is late by at most one gap and ignores recipients in retry backoff and the
  provider's own latency.

Per status:

* ``queued`` / ``running``: ``not_connected`` when the provider says the session is
  not connected (no estimate: nobody knows when the phone comes back); else
  ``behind_broadcast`` with the id of the oldest broadcast ahead (the one the
  session is sending now) when any is ahead; else ``pace`` when the session's next
  allowed send is more than ``PACE_WAIT_THRESHOLD`` away; else no reason (it is
  sending). An unknown connection state (the check failed or timed out) counts as
  connected, as the create-time check does (fail-open).
* A session with a daily cap (``domain.daily_caps``) sends only what its day has
  left; the rest goes from the start of the next day (in the tenant's zone), a
  day's cap at a time, so ``finish`` is on the day the last send fits. When
  today has nothing left, a sendable broadcast with recipients waiting says
  ``daily_cap`` (before ``behind_broadcast``: nothing on the session goes today).
* ``scheduled``: reason ``scheduled``; it starts at the later of ``send_at`` and
  the moment the broadcasts ahead of it now would be done, so
  ``finish = max(send_at, start + pending ahead * gap) + own pending * gap``.
  Broadcasts created after it that are sending now do not count: at ``send_at``
  it is older than they are and goes first.
* Quiet hours (``domain.quiet_hours``; the broadcast's own window, else its
  tenant's, in the tenant's zone): a ``queued`` / ``running`` broadcast inside
  them has reason ``quiet_hours`` (after ``not_connected``, before the others:
  the claim skips it whatever is ahead), and its estimate is pushed past each
  quiet period its span of sending runs into (``finish_after_quiet``). A broadcast
  keeping quiet hours in its recipients' zones gets no such shift or reason: which
  of its recipients are awake varies by the hour.
* ``paused``: reason ``paused`` and no estimate; nothing is sent until someone
  resumes it, so any time would be a guess about a person.
* ``accepted`` (being stored), settled and cancelled broadcasts: all three None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from wabroadcast.domain.daily_caps import CapSettings, last_send_at
from wabroadcast.domain.quiet_hours import QuietWindow, finish_after_quiet, is_quiet
from wabroadcast.domain.status import BroadcastStatus
from wabroadcast.providers.base import Pace

# A session whose next allowed send is further away than this is "waiting for its
# pace"; closer, it is sending at its pace (8 a minute sends every 7.5 s).
PACE_WAIT_THRESHOLD = timedelta(seconds=10)


class WaitingReason(StrEnum):
    SCHEDULED = "scheduled"
    BEHIND_BROADCAST = "behind_broadcast"
    PAUSED = "paused"
    NOT_CONNECTED = "not_connected"
    PACE = "pace"
    QUIET_HOURS = "quiet_hours"
    DAILY_CAP = "daily_cap"


@dataclass(frozen=True, slots=True)
class DailyCap:
    """A capped session's day: its cap settings, its tenant's zone, what today has left
    (None: no cap today)."""

    settings: CapSettings
    zone: str
    left_today: int | None


@dataclass(frozen=True, slots=True)
class SessionPacing:
    """What the estimate needs of a session: its mean gap between sends, its GCRA turn,
    and whether its provider says it is connected (None: it could not say)."""

    gap: timedelta
    next_send_at: datetime | None
    connected: bool | None
    daily_cap: DailyCap | None = None


@dataclass(frozen=True, slots=True)
class InLine:
    """A sendable broadcast in its session's line, with its recipients queued or sending."""

    broadcast_id: int
    pending: int


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A broadcast's quiet window and the zone it is read in."""

    window: QuietWindow
    zone: str


@dataclass(frozen=True, slots=True)
class Estimate:
    estimated_finish_at: datetime | None = None
    waiting_reason: WaitingReason | None = None
    waiting_for_broadcast_id: int | None = None


NO_ESTIMATE = Estimate()
_SENDABLE = frozenset({BroadcastStatus.QUEUED, BroadcastStatus.RUNNING})


def mean_gap(pace: Pace) -> timedelta:
    """The mean time between two sends at ``pace``: the interval plus half the jitter
    (drawn uniformly from 0 to ``jitter_ms``); zero when unpaced."""
    if not pace.paced:
        return timedelta(0)
    return pace.interval + timedelta(milliseconds=pace.jitter_ms / 2)


def after_sends(start: datetime, count: int, session: SessionPacing) -> datetime:
    """When the ``count``-th send from ``start`` goes, at the session's gap and within
    its daily caps."""
    cap = session.daily_cap
    if cap is None:
        return start + max(0, count) * session.gap
    return last_send_at(
        cap.settings, cap.zone, count=count, start=start, gap=session.gap, left_today=cap.left_today
    )


def ahead_of(broadcast_id: int, line: Sequence[InLine]) -> list[InLine]:
    """The broadcasts served before ``broadcast_id`` on its session: the older ones of the
    session's line with something left, oldest first."""
    return sorted(
        (b for b in line if b.broadcast_id < broadcast_id and b.pending > 0),
        key=lambda b: b.broadcast_id,
    )


def estimate(
    *,
    status: BroadcastStatus,
    send_at: datetime | None,
    pending: int,
    ahead: Sequence[InLine],
    session: SessionPacing,
    now: datetime,
    pace_threshold: timedelta = PACE_WAIT_THRESHOLD,
    quiet: QuietHours | None = None,
) -> Estimate:
    """The broadcast's estimated finish and why it is not sending (module docstring).

    ``pending``: its recipients queued or sending; ``ahead``: the broadcasts served
    before it on its session (``ahead_of``).
    """
    if status is BroadcastStatus.PAUSED:
        return Estimate(waiting_reason=WaitingReason.PAUSED)
    if status is not BroadcastStatus.SCHEDULED and status not in _SENDABLE:
        return NO_ESTIMATE
    waiting = [b for b in ahead if b.pending > 0]
    start = now if session.next_send_at is None else max(now, session.next_send_at)
    ahead_pending = sum(b.pending for b in waiting)
    ahead_done = after_sends(start, ahead_pending, session)
    own = max(0, pending) * session.gap
    if status is BroadcastStatus.SCHEDULED:
        begins = ahead_done if send_at is None else max(send_at, ahead_done)
        return Estimate(_past_quiet(quiet, begins, own), WaitingReason.SCHEDULED)
    if session.connected is False:
        return Estimate(waiting_reason=WaitingReason.NOT_CONNECTED)
    if pending <= 0:
        return Estimate(now)
    finish = after_sends(start, ahead_pending + pending, session)
    finish = _past_quiet(quiet, start, finish - start)
    if quiet is not None and is_quiet(quiet.window, quiet.zone, now):
        return Estimate(finish, WaitingReason.QUIET_HOURS)
    if session.daily_cap is not None and session.daily_cap.left_today == 0:
        return Estimate(finish, WaitingReason.DAILY_CAP)
    if waiting:
        first = min(b.broadcast_id for b in waiting)  # the one the session sends now
        return Estimate(finish, WaitingReason.BEHIND_BROADCAST, first)
    if start - now > pace_threshold:
        return Estimate(finish, WaitingReason.PACE)
    return Estimate(finish)


def _past_quiet(quiet: QuietHours | None, start: datetime, work: timedelta) -> datetime:
    """When ``work`` of sending from ``start`` ends, paused in each quiet period."""
    if quiet is None:
        return start + work
    return finish_after_quiet(quiet.window, quiet.zone, start, work)
