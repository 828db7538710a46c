"""The deliverer: runs in every worker process and sends the outbox's events to the CRMs.

Each round claims the deliveries that are due under a lease (committed before any
request leaves), posts them signed, and writes each attempt with its answer; a
failure is retried on the schedule of ``events.next_attempt_at`` and given up after
24 hours. A worker that dies mid-request leaves its lease to expire and another
worker makes the attempt again with the same event id: at least once, never lost.
Only the earliest pending event of a broadcast is claimable for a subscription, so
the CRM gets a broadcast's events in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime, timedelta

import httpx

from wabroadcast import __version__
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.events import (
    DeliveryStatus,
    event_body,
    is_success,
    next_attempt_at,
    signed_headers,
)
from wabroadcast.crm_webhooks.repository import ClaimedDelivery, DeliveryRepository
from wabroadcast.crm_webhooks.service import SECRET_FIELD
from wabroadcast.crypto import SecretKeyMissing, SecretsUnreadable
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger

log = get_logger("wabroadcast.crm_webhooks")

# Deliveries claimed per round (and posted at once).
CLAIM_LIMIT = 50
ERROR_CHARS = 300


class WebhookDeliverer:
    """Claims due deliveries, posts them and records what happened."""

    def __init__(
        self, ctx: AppContext, worker_id: str, *, http: httpx.AsyncClient | None = None
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id
        self.timeout_s = ctx.settings.webhook_timeout_s
        self.lease_for = timedelta(seconds=ctx.settings.webhook_lease_s)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=self.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"wabroadcast-webhooks/{__version__}"},
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; a full round goes on at once, else it waits a poll."""
        try:
            while not stop.is_set():
                claimed = 0
                try:
                    claimed = await self.deliver_due()
                except Exception as exc:
                    # A database restart must not end the deliveries; leases make retrying safe.
                    log.warning(
                        f"{BROADCAST_TAG} webhook delivery round failed; retrying",
                        broadcast_id=None,
                        worker_id=self.worker_id,
                        error=repr(exc),
                    )
                if claimed < CLAIM_LIMIT:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.ctx.settings.worker_poll_s)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def deliver_due(self) -> int:
        """One round: claim what is due, post it all, record each attempt. How many."""
        lease = f"{self.worker_id[:48]}:{uuid.uuid4().hex[:12]}"
        async with self.ctx.database.transaction() as db:
            claimed = await DeliveryRepository(db).claim_due(
                lease, self.ctx.clock.now(), self.lease_for, CLAIM_LIMIT
            )
        if claimed:
            await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _deliver(self, item: ClaimedDelivery) -> None:
        attempted_at = self.ctx.clock.now()
        started = time.monotonic()
        status_code, error = await self._post(item, attempted_at)
        duration_ms = int((time.monotonic() - started) * 1000)
        now = self.ctx.clock.now()
        succeeded = status_code is not None and is_success(status_code)
        retry_at = None if succeeded else next_attempt_at(item.created_at, item.attempt, now)
        if succeeded:
            status = DeliveryStatus.DELIVERED
        elif retry_at is None:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.PENDING
        async with self.ctx.database.transaction() as db:
            kept = await DeliveryRepository(db).record(
                item,
                attempted_at=attempted_at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                status=status,
                retry_at=retry_at,
                now=now,
            )
        log_fields = {
            "broadcast_id": item.broadcast_id,
            "tenant_id": item.tenant_id,
            "subscription_id": item.subscription_id,
            "event_id": item.event_id,
            "event_type": item.event_type,
            "attempt": item.attempt,
            "status_code": status_code,
        }
        if not kept:
            log.warning(f"{BROADCAST_TAG} webhook lease lost during the attempt", **log_fields)
        elif status is DeliveryStatus.DELIVERED:
            log.info(f"{BROADCAST_TAG} webhook delivered", **log_fields)
        elif status is DeliveryStatus.FAILED:
            log.warning(f"{BROADCAST_TAG} webhook given up after 24 h", error=error, **log_fields)
        else:
            log.info(
                f"{BROADCAST_TAG} webhook attempt failed; retrying",
                error=error,
                retry_at=_iso(retry_at),
                **log_fields,
            )

    async def _post(self, item: ClaimedDelivery, at: datetime) -> tuple[int | None, str | None]:
        """The receiver's status code (None if there was no answer) and what went wrong."""
        try:
            secret = self.ctx.secrets.decrypt(item.secret)[SECRET_FIELD]
        except (SecretKeyMissing, SecretsUnreadable, KeyError) as exc:
            return None, f"the subscription's secret cannot be read: {exc}"[:ERROR_CHARS]
        body = event_body(item.event_id, item.event_type, item.created_at, item.data)
        timestamp = int(at.timestamp())
        headers = signed_headers(secret, timestamp, item.event_id, item.event_type, body)
        try:
            response = await self.http.post(item.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if is_success(response.status_code):
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
