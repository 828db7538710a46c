"""Creating tenants and resolving who is calling.

API keys are random 256-bit secrets, so a SHA-256 of the key is enough to store
(no slow KDF needed) and lets us look the caller up by an indexed equality.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.models import Tenant, WhatsAppSession
from wabroadcast.dispatch.pacing import effective_pace
from wabroadcast.domain.errors import SessionNotFound, ValidationFailed
from wabroadcast.providers.base import SessionRef
from wabroadcast.tenants.repository import TenantRepository
from wabroadcast.tenants.schemas import SessionStatusOut

if TYPE_CHECKING:
    from wabroadcast.context import AppContext

API_KEY_PREFIX = "wab_"


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The authenticated caller, as services see it."""

    tenant_id: int
    name: str
    default_region: str

    @classmethod
    def of(cls, tenant: Tenant) -> TenantContext:
        return cls(tenant.id, tenant.name, tenant.default_region)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    tenant_id: int
    provider: str
    max_concurrency: int
    rate_per_minute: float | None
    jitter_ms: int | None

    def ref(self, config: dict[str, object] | None = None) -> SessionRef:
        return SessionRef(self.session_id, self.tenant_id, self.provider, config or {})


@dataclass(frozen=True, slots=True)
class CreatedTenant:
    tenant_id: int
    api_key: str
    session_id: str


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def default_session_id(tenant_id: int) -> str:
    return f"business_{tenant_id}"


def normalize_region(region: str) -> str:
    """An upper-case ISO 3166 alpha-2 region that phone parsing knows."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(
            f"region: {region!r} is not a known ISO 3166 alpha-2 region",
            details={"field": "region", "value": region},
        )
    return code


def session_info(row: WhatsAppSession) -> SessionInfo:
    return SessionInfo(
        session_id=row.id,
        tenant_id=row.tenant_id,
        provider=row.provider,
        max_concurrency=row.max_concurrency,
        rate_per_minute=row.rate_per_minute,
        jitter_ms=row.jitter_ms,
    )


async def create_tenant(
    session: AsyncSession, clock: Clock, *, name: str, region: str, provider: str
) -> CreatedTenant:
    """A tenant, its API key (returned once, stored hashed) and its default session."""
    from wabroadcast.providers.registry import known_provider, on_session_created

    if not name.strip():
        raise ValidationFailed("name: must not be empty", details={"field": "name"})
    if not known_provider(provider):
        raise ValidationFailed(
            f"provider: {provider!r} is not a known provider",
            details={"field": "provider", "value": provider},
        )
    now = clock.now()
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    repo = TenantRepository(session)
    tenant = await repo.add_tenant(
        Tenant(
            name=name.strip(),
            api_key_hash=hash_api_key(api_key),
            api_key_prefix=api_key[:12],
            default_region=normalize_region(region),
            created_at=now,
        )
    )
    wa_session = await repo.add_session(
        WhatsAppSession(
            id=default_session_id(tenant.id),
            tenant_id=tenant.id,
            provider=provider,
            config={},
            is_default=True,
            max_concurrency=1,
            webhook_secret=secrets.token_hex(32),
            created_at=now,
        )
    )
    await on_session_created(session, clock, wa_session)
    return CreatedTenant(tenant_id=tenant.id, api_key=api_key, session_id=wa_session.id)


async def authenticate(session: AsyncSession, api_key: str) -> TenantContext | None:
    """The tenant that owns ``api_key``, or None."""
    tenant = await TenantRepository(session).by_api_key_hash(hash_api_key(api_key))
    if tenant is None:
        return None
    return TenantContext.of(tenant)


async def resolve_session(
    session: AsyncSession, tenant: TenantContext, session_id: str | None
) -> SessionInfo:
    """The named session if the tenant owns it, else its default; 404 otherwise."""
    repo = TenantRepository(session)
    if session_id is None:
        row = await repo.default_session(tenant.tenant_id)
    else:
        row = await repo.get_session(tenant.tenant_id, session_id)
    if row is None:
        raise SessionNotFound(
            "WhatsApp session not found",
            details={"session_id": session_id or default_session_id(tenant.tenant_id)},
        )
    return session_info(row)


async def session_status(
    ctx: AppContext, tenant: TenantContext, session_id: str | None
) -> SessionStatusOut:
    """The session's connection state as its provider reports it, with its send settings."""
    async with ctx.database.transaction() as session:
        info = await resolve_session(session, tenant, session_id)
    provider = ctx.providers.for_kind(info.provider)
    pace = effective_pace(info.provider, info.rate_per_minute, info.jitter_ms)
    state: Literal["connected", "disconnected", "unknown"] = "unknown"
    detail: str | None = None
    try:
        status = await asyncio.wait_for(
            provider.connection_status(info.ref()), ctx.settings.connection_check_timeout_s
        )
        state = "connected" if status.connected else "disconnected"
        detail = status.detail
    except TimeoutError:
        detail = "status check timed out"
    except Exception as exc:
        detail = f"status check failed: {exc!r}"[:200]
    return SessionStatusOut(
        session_id=info.session_id,
        provider=info.provider,
        state=state,
        connected=state == "connected",
        detail=detail,
        checked_at=ctx.clock.now(),
        max_concurrency=info.max_concurrency,
        rate_per_minute=pace.rate_per_minute,
        jitter_ms=pace.jitter_ms,
        pace_is_default=info.rate_per_minute is None and info.jitter_ms is None,
    )


async def update_session_settings(
    session: AsyncSession,
    session_id: str,
    *,
    max_concurrency: int | None,
    rate_per_minute: float | None,
    jitter_ms: int | None,
) -> dict[str, object]:
    """Change what is given, keep the rest; the session's settings after the change."""
    row = await TenantRepository(session).get_session_by_id(session_id)
    if row is None:
        raise SessionNotFound("WhatsApp session not found", details={"session_id": session_id})
    if max_concurrency is not None:
        row.max_concurrency = max_concurrency
    if rate_per_minute is not None:
        row.rate_per_minute = rate_per_minute
    if jitter_ms is not None:
        row.jitter_ms = jitter_ms
    await session.flush()
    return {
        "session_id": row.id,
        "provider": row.provider,
        "max_concurrency": row.max_concurrency,
        "rate_per_minute": row.rate_per_minute,
        "jitter_ms": row.jitter_ms,
    }
