"""Known rows for metrics tests: broadcasts whose counters match their recipients."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from tests.support.tenants import START, TenantFixture
from wabroadcast.context import AppContext
from wabroadcast.db.models import WhatsAppBroadcast, WhatsAppBroadcastRecipient

_phones = itertools.count(1)


@dataclass(frozen=True)
class Row:
    """A recipient to store, with the times of what happened to it."""

    status: str
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None


async def store_broadcast(
    ctx: AppContext, tenant: TenantFixture, status: str, rows: list[Row]
) -> int:
    """A broadcast with these recipients, its counters matching their statuses."""
    counts = Counter(row.status for row in rows)
    async with ctx.database.transaction() as db:
        broadcast = WhatsAppBroadcast(
            tenant_id=tenant.tenant_id,
            session_id=tenant.session_id,
            status=status,
            message="known data",
            connection_check="connected",
            total_recipients=len(rows),
            queued_count=counts["queued"],
            sending_count=counts["sending"],
            sent_count=counts["sent"],
            delivered_count=counts["delivered"],
            read_count=counts["read"],
            failed_count=counts["failed"],
            cancelled_count=counts["cancelled"],
            created_at=START - timedelta(hours=2),
            updated_at=START,
        )
        db.add(broadcast)
        await db.flush()
        for row in rows:
            phone = f"+97250{next(_phones):07d}"
            db.add(
                WhatsAppBroadcastRecipient(
                    broadcast_id=broadcast.id,
                    tenant_id=tenant.tenant_id,
                    session_id=tenant.session_id,
                    raw_input=phone,
                    phone=phone,
                    status=row.status,
                    queued_at=START - timedelta(hours=2),
                    sent_at=row.sent_at,
                    delivered_at=row.delivered_at,
                    failed_at=row.failed_at,
                    updated_at=START,
                )
            )
    return broadcast.id
