"""A client's ``Idempotency-Key``: claimed (and committed) before the work, replayed after.

The same key with the same body replays the first response; with another body
it is a mismatch; while the first request runs, or when it was abandoned, the
key is in use or taken over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from wabroadcast.broadcasts.repository.idempotency import IdempotencyRepository
from wabroadcast.broadcasts.schemas import (
    BroadcastAccepted,
    BroadcastCreate,
)
from wabroadcast.broadcasts.views import (
    CreateResult,
)
from wabroadcast.context import AppContext
from wabroadcast.domain import idempotency
from wabroadcast.domain.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    ValidationFailed,
)
from wabroadcast.observability.logging import BROADCAST_TAG, get_logger
from wabroadcast.sessions.config import SessionInfo
from wabroadcast.tenants.service import TenantContext

log = get_logger("wabroadcast.broadcasts")


@dataclass(frozen=True, slots=True)
class ClientKey:
    key: str
    request_hash: str
    claimed_at: datetime


# Fields added since clients began storing keys: left out of the fingerprint when unset,
# so a retry that spans an upgrade still matches the request it repeats.
_OPTIONAL_SINCE_KEYS = ("quiet_hours", "quiet_hours_zone")


def canonical_request(body: BroadcastCreate, wa_session: SessionInfo) -> str:
    payload = body.model_dump(mode="json")
    for field in _OPTIONAL_SINCE_KEYS:
        if payload.get(field) is None:
            payload.pop(field, None)
    payload["session_id"] = wa_session.session_id
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


async def claim_client_key(
    ctx: AppContext,
    tenant: TenantContext,
    wa_session: SessionInfo,
    body: BroadcastCreate,
    raw_key: str,
) -> tuple[ClientKey, CreateResult | None]:
    key = idempotency.unquote_client_key(raw_key)
    if not idempotency.is_valid_client_key(key):
        raise ValidationFailed(
            "Idempotency-Key: must be 1-255 visible ASCII characters",
            details={"field": "Idempotency-Key"},
        )
    request_hash = idempotency.request_fingerprint(canonical_request(body, wa_session))
    now = ctx.clock.now()
    expires_at = now + timedelta(seconds=ctx.settings.idempotency_key_ttl_s)
    claim = ClientKey(key, request_hash, now)
    async with ctx.database.transaction() as session:
        repo = IdempotencyRepository(session)
        if await repo.try_claim(
            tenant_id=tenant.tenant_id,
            key=key,
            request_hash=request_hash,
            at=now,
            expires_at=expires_at,
        ):
            return claim, None
        row = await repo.get(tenant.tenant_id, key)
        if row is None:
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is being processed; retry shortly",
                details={"idempotency_key": key},
            )
        abandoned = row.state == "in_flight" and row.created_at <= now - timedelta(
            seconds=ctx.settings.idempotency_in_flight_timeout_s
        )
        if row.expires_at <= now or abandoned:
            if await repo.take_over(
                tenant_id=tenant.tenant_id,
                key=key,
                previous_created_at=row.created_at,
                request_hash=request_hash,
                at=now,
                expires_at=expires_at,
            ):
                return claim, None
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is being processed; retry shortly",
                details={"idempotency_key": key},
            )
        if row.request_hash != request_hash:
            raise IdempotencyKeyMismatch(
                "This Idempotency-Key was already used with a different request body",
                details={"idempotency_key": key},
            )
        if row.state == "in_flight" or row.response_body is None or row.response_status is None:
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is being processed; retry shortly",
                details={"idempotency_key": key},
            )
        replay = BroadcastAccepted.model_validate({**row.response_body, "idempotent": True})
        log.info(
            f"{BROADCAST_TAG} idempotent replay",
            broadcast_id=row.broadcast_id,
            tenant_id=tenant.tenant_id,
            queued_count=replay.queued_count,
            invalid_recipients_count=replay.invalid_recipients_count,
            duplicates_removed=replay.duplicates_removed,
            idempotency_key=key,
        )
        return claim, CreateResult(row.response_status, replay)


async def release_client_key(ctx: AppContext, tenant: TenantContext, claim: ClientKey) -> None:
    async with ctx.database.transaction() as session:
        await IdempotencyRepository(session).release(
            tenant_id=tenant.tenant_id, key=claim.key, claimed_at=claim.claimed_at
        )
