"""Finishing broadcasts that have nothing left to send, in the caller's transaction.

Two things end a broadcast's last sends: a worker writing their results, and an opt-out
skipping the last queued recipients. Both finish it the same way: the final status from
its counts (``domain.status.final_broadcast_status``), one logged line each.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.dispatch.repository.lifecycle import LifecycleRepository
from wabroadcast.domain.status import final_broadcast_status
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger

log = get_logger("wabroadcast.broadcasts")


async def finish_done(session: AsyncSession, broadcast_ids: Iterable[int], now: datetime) -> None:
    """Finish those of ``broadcast_ids`` with nothing queued or sending any more."""
    lifecycle = LifecycleRepository(session)
    finished = [
        (broadcast, final_broadcast_status(broadcast.sent, broadcast.failed, broadcast.skipped))
        for broadcast in await lifecycle.finishable(broadcast_ids)
    ]
    await lifecycle.finish_many(finished, now)
    for broadcast, status in finished:
        log.info(
            f"{BROADCAST_TAG} finished",
            broadcast_id=broadcast.id,
            status=status.value,
            queued_count=0,
            sent_count=broadcast.sent,
            failed_count=broadcast.failed,
            cancelled_count=broadcast.cancelled,
            skipped_count=broadcast.skipped,
        )
