"""Estimates on the broadcasts a client is shown: read their sessions' lines, ask the
providers whether those sessions are connected, fill the three fields
(``broadcasts.estimates`` holds the rule).

Reading happens in the caller's transaction, in two statements however many
broadcasts are shown; the connection checks happen after it (a provider call must
never hold SQLite's write lock), one per session that has something to send, all at
once and each bounded by ``CHECK_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.estimates import (
    NO_ESTIMATE,
    DailyCap,
    Estimate,
    InLine,
    QuietHours,
    SessionPacing,
    ahead_of,
    estimate,
    mean_gap,
)
from wabroadcast.broadcasts.repository.estimates import EstimateRepository
from wabroadcast.broadcasts.schemas import BroadcastOut
from wabroadcast.context import AppContext
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.dispatch.pacing import effective_pace
from wabroadcast.domain.quiet_hours import ZONE_RECIPIENT, safe_zone_name, window_of
from wabroadcast.domain.status import BroadcastStatus
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.providers.base import SessionRef

log = get_logger("wabroadcast.broadcasts")

# A read must stay quick when a provider does not answer: the state is then unknown,
# and an unknown state counts as connected (like the create-time check, fail-open).
CHECK_TIMEOUT_S = 1.0
# Statuses whose estimate reads the session's line.
_IN_LINE = frozenset({BroadcastStatus.SCHEDULED, BroadcastStatus.QUEUED, BroadcastStatus.RUNNING})
_SENDING = frozenset({BroadcastStatus.QUEUED, BroadcastStatus.RUNNING})


@dataclass(frozen=True, slots=True)
class _Session:
    provider: str
    ref: SessionRef | None  # None: its secrets cannot be read, so it cannot send
    gap: timedelta
    next_send_at: datetime | None
    daily_cap: DailyCap | None = None


@dataclass(frozen=True, slots=True)
class SessionLines:
    """What was read for the estimates of some broadcasts: their sessions and lines."""

    sessions: dict[str, _Session]
    lines: dict[str, list[InLine]]
    # The quiet hours each shown broadcast keeps in its tenant's zone, by id.
    quiet: dict[int, QuietHours] = field(default_factory=dict)


async def read_lines(
    db: AsyncSession, ctx: AppContext, tenant_id: int, shown: Sequence[BroadcastOut]
) -> SessionLines:
    """The sessions and lines the estimates of ``shown`` need, in ``db``'s transaction."""
    waiting = [b for b in shown if b.status in _IN_LINE]
    if not waiting:
        return SessionLines({}, {})
    session_ids = {b.session_id for b in waiting}
    repo = EstimateRepository(db)
    sessions: dict[str, _Session] = {}
    rows = await repo.sessions(tenant_id, session_ids)
    days = await repo.capped_today([row.id for row in rows], ctx.clock.now())
    for row in rows:
        pace = effective_pace(row.provider, row.rate_per_minute, row.jitter_ms)
        try:
            ref: SessionRef | None = ctx.session_refs.of(row)
        except (SecretKeyMissing, SecretsUnreadable):
            ref = None
        today = days.get(row.id)
        cap = None if today is None else DailyCap(today.settings, today.zone, today.left)
        sessions[row.id] = _Session(row.provider, ref, mean_gap(pace), row.next_send_at, cap)
    lines = await repo.lines(tenant_id, session_ids, max(b.broadcast_id for b in waiting))
    quiet = await _quiet_hours_of(repo, tenant_id, [b.broadcast_id for b in waiting])
    return SessionLines(sessions, lines, quiet)


async def _quiet_hours_of(
    repo: EstimateRepository, tenant_id: int, broadcast_ids: Sequence[int]
) -> dict[int, QuietHours]:
    """The broadcasts that keep quiet hours in the tenant's zone, with their window
    (those in recipient mode are left out: ``broadcasts.estimates``)."""
    tenant_zone, tenant_window, own = await repo.quiet_hours(tenant_id, broadcast_ids)
    zone_name = safe_zone_name(tenant_zone)
    quiet: dict[int, QuietHours] = {}
    for broadcast_id, (window_text, zone_mode) in own.items():
        window = window_of(window_text, tenant_window)
        if window is not None and zone_mode != ZONE_RECIPIENT:
            quiet[broadcast_id] = QuietHours(window, zone_name)
    return quiet


async def with_estimates(
    ctx: AppContext, read: SessionLines, shown: Sequence[BroadcastOut]
) -> list[BroadcastOut]:
    """``shown`` with ``estimated_finish_at``, ``waiting_reason`` and
    ``waiting_for_broadcast_id`` filled; call it after the transaction of ``read_lines``."""
    to_check = sorted(
        {
            b.session_id
            for b in shown
            if b.status in _SENDING and b.queued_count > 0 and b.session_id in read.sessions
        }
    )
    states = await asyncio.gather(*(_connected(ctx, read.sessions[s], s) for s in to_check))
    connected = dict(zip(to_check, states, strict=True))
    now = ctx.clock.now()
    out: list[BroadcastOut] = []
    for b in shown:
        found = _estimate_of(b, read, connected, now)
        out.append(
            b.model_copy(
                update={
                    "estimated_finish_at": found.estimated_finish_at,
                    "waiting_reason": found.waiting_reason and found.waiting_reason.value,
                    "waiting_for_broadcast_id": found.waiting_for_broadcast_id,
                }
            )
        )
    return out


def _estimate_of(
    b: BroadcastOut, read: SessionLines, connected: dict[str, bool | None], now: datetime
) -> Estimate:
    session = read.sessions.get(b.session_id)
    if session is None:
        # Not read: the broadcast is paused or over (or its session is gone).
        if b.status in _IN_LINE:
            return NO_ESTIMATE
        pacing = SessionPacing(timedelta(0), None, None)
    else:
        pacing = SessionPacing(
            session.gap, session.next_send_at, connected.get(b.session_id), session.daily_cap
        )
    return estimate(
        status=b.status,
        send_at=b.send_at,
        pending=b.queued_count,  # queued or sending
        ahead=ahead_of(b.broadcast_id, read.lines.get(b.session_id, [])),
        session=pacing,
        now=now,
        quiet=read.quiet.get(b.broadcast_id),
    )


async def _connected(ctx: AppContext, session: _Session, session_id: str) -> bool | None:
    """Whether the provider says the session is connected; None when it cannot say in
    time. A session whose secrets cannot be read cannot send: not connected."""
    if session.ref is None:
        return False
    try:
        status = await asyncio.wait_for(
            ctx.providers.for_kind(session.provider).connection_status(session.ref),
            min(CHECK_TIMEOUT_S, ctx.settings.connection_check_timeout_s),
        )
    except Exception as exc:
        log.info(
            f"{BROADCAST_TAG} connection state unknown for the estimate",
            broadcast_id=None,
            session_id=session_id,
            error=repr(exc),
        )
        return None
    return status.connected


async def estimated(ctx: AppContext, tenant_id: int, shown: BroadcastOut) -> BroadcastOut:
    """One broadcast as just changed (paused, resumed, cancelled), with its estimate."""
    async with ctx.database.transaction() as session:
        lines = await read_lines(session, ctx, tenant_id, [shown])
    return (await with_estimates(ctx, lines, [shown]))[0]
