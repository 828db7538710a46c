"""SQL of "retry failed": which failure codes a broadcast has, and re-queueing them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.broadcasts.repository.counts import shift_counts
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import OptOut, WhatsAppBroadcastRecipient
from wabroadcast.domain.status import RecipientStatus, ensure_transition

R = WhatsAppBroadcastRecipient


class RetryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def failed_codes(self, broadcast_id: int) -> dict[str | None, int]:
        """The error codes of the broadcast's failed recipients, and how many have each."""
        result = await self.session.execute(
            select(R.error_code, func.count())
            .where(R.broadcast_id == broadcast_id, R.status == RecipientStatus.FAILED.value)
            .group_by(R.error_code)
        )
        return {code: int(count) for code, count in result.all()}

    async def requeue_failed(
        self, broadcast_id: int, codes: Collection[str | None], now: datetime
    ) -> int:
        """Failed recipients of the broadcast with one of ``codes`` (None: no code) go back
        to ``queued``, due now, with the counters moved in the same transaction; how many.

        Their client message id is cleared, so the next claim gives them a new one
        (``wab-<id>-<attempt>`` of an attempt not used yet) and WhatsApp cannot take the
        resend for a repeat of the failed send. The provider message id and the failure
        time go too (a late receipt for the failed message no longer finds them); the
        error code and message stay as the last error until the next attempt's result.
        A number that has opted out since stays failed: it is not messaged again.
        """
        ensure_transition(RecipientStatus.FAILED, RecipientStatus.QUEUED)
        named = sorted(code for code in codes if code is not None)
        matches = []
        if named:
            matches.append(one_of(self.session, R.error_code, named))
        if None in codes:
            matches.append(R.error_code.is_(None))
        if not matches:
            return 0
        rows = (
            await self.session.execute(
                update(R)
                .where(
                    R.broadcast_id == broadcast_id,
                    R.status == RecipientStatus.FAILED.value,
                    or_(*matches),
                    ~exists().where(OptOut.tenant_id == R.tenant_id, OptOut.phone == R.phone),
                )
                .values(
                    status=RecipientStatus.QUEUED.value,
                    next_attempt_at=now,
                    client_message_id=None,
                    provider_message_id=None,
                    failed_at=None,
                    lease_owner=None,
                    lease_epoch=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .returning(R.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if rows:
            await shift_counts(
                self.session,
                {broadcast_id: {(RecipientStatus.FAILED, RecipientStatus.QUEUED): len(rows)}},
                now,
                locked=True,
            )
        return len(rows)
