"""All SQL of replies: mark the recipients a batch of inbound messages replies to, and
count them in their broadcasts.

Broadcasts are locked first, in id order (PostgreSQL), like every writer that takes
a broadcast and then its recipients (claims, opt-outs); the recipients' UPDATE is
fenced by ``replied_at IS NULL``, so a reply is counted once however many messages
and webhook calls race for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.db.engine import is_postgres
from wabroadcast.db.in_list import one_of
from wabroadcast.db.models import Tenant, WhatsAppBroadcast, WhatsAppBroadcastRecipient, table_of

B = WhatsAppBroadcast
R = WhatsAppBroadcastRecipient


@dataclass(frozen=True, slots=True)
class MarkedReply:
    """A recipient just marked as having replied."""

    tenant_id: int
    broadcast_id: int
    recipient_id: int
    phone: str
    lead_id: int | None
    text: str | None


class ReplyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def regions(self, tenant_ids: Sequence[int]) -> dict[int, str]:
        """Each tenant's default phone region, to read the senders' numbers."""
        if not tenant_ids:
            return {}
        result = await self.session.execute(
            select(Tenant.id, Tenant.default_region).where(
                one_of(self.session, Tenant.id, sorted(set(tenant_ids)))
            )
        )
        return {int(tenant_id): str(region) for tenant_id, region in result.all()}

    async def mark_replies(
        self,
        texts: Mapping[tuple[int, str], str | None],
        since: datetime,
        now: datetime,
    ) -> list[MarkedReply]:
        """Recipients of ``texts``' (tenant, E.164 number) sent to in [since, now] and not
        marked yet get ``replied_at = now`` and that text; their broadcasts' ``reply_count``
        grows by as many. The recipients marked, by broadcast and id."""
        if not texts:
            return []
        pairs = sorted(texts)
        recipients = table_of(R)
        c = recipients.c
        window = and_(
            tuple_(c.tenant_id, c.phone).in_(pairs),
            c.sent_at.is_not(None),
            c.sent_at >= since,
            c.sent_at <= now,
            c.replied_at.is_(None),
        )
        candidates = (
            (await self.session.execute(select(c.broadcast_id).where(window).distinct()))
            .scalars()
            .all()
        )
        if not candidates:
            return []
        broadcast_ids = sorted(int(b) for b in candidates)
        if is_postgres(self.session):
            locked = await self.session.execute(
                select(B.id)
                .where(one_of(self.session, B.id, broadcast_ids))
                .order_by(B.id)
                .with_for_update()
            )
            broadcast_ids = sorted(int(b) for b in locked.scalars())
        reply_text = case(
            *((and_(c.tenant_id == t, c.phone == p), texts[(t, p)]) for t, p in pairs),
            else_=None,
        )
        result = await self.session.execute(
            update(recipients)
            .where(window, c.broadcast_id.in_(broadcast_ids))
            .values(replied_at=now, reply_text=reply_text, updated_at=now)
            .returning(c.tenant_id, c.broadcast_id, c.id, c.phone, c.lead_id, c.reply_text)
        )
        marked = sorted(
            (
                MarkedReply(int(t), int(b), int(i), str(p), None if lead is None else int(lead), x)
                for t, b, i, p, lead, x in result.all()
            ),
            key=lambda m: (m.broadcast_id, m.recipient_id),
        )
        counts: dict[int, int] = {}
        for reply in marked:
            counts[reply.broadcast_id] = counts.get(reply.broadcast_id, 0) + 1
        if counts:
            broadcasts = table_of(B)
            await self.session.execute(
                update(broadcasts)
                .where(broadcasts.c.id.in_(sorted(counts)))
                .values(
                    reply_count=broadcasts.c.reply_count
                    + case(counts, value=broadcasts.c.id, else_=0),
                    updated_at=now,
                )
            )
        return marked
