"""Creating tenants and resolving who is calling.

API keys are random 256-bit secrets, so a SHA-256 of the key is enough to store
(no slow KDF needed) and lets us look the caller up by an indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.models import Tenant
from wabroadcast.domain.errors import NotFound, ValidationFailed
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.config import SecretReader
from wabroadcast.sessions.schemas import SessionCreate
from wabroadcast.sessions.service import add_session
from wabroadcast.tenants.repository import TenantRepository

API_KEY_PREFIX = "wab_"
# The characters of a key that are stored and shown to tell keys apart ("wab_" and 8 more).
KEY_PREFIX_CHARS = 12
# A replaced key may keep working for up to this long after a rotation.
MAX_GRACE = timedelta(days=365)


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
class CreatedTenant:
    tenant_id: int
    api_key: str
    session_id: str


@dataclass(frozen=True, slots=True)
class RotatedKey:
    """A tenant's new key (shown once) and the replaced key's grace, if it has one."""

    tenant_id: int
    api_key: str
    api_key_prefix: str
    previous_key_prefix: str | None
    previous_key_valid_until: datetime | None


@dataclass(frozen=True, slots=True)
class TenantSummary:
    """A tenant as an operator lists it: key prefixes, never a key or its hash."""

    tenant_id: int
    name: str
    region: str
    api_key_prefix: str
    previous_key_prefix: str | None
    previous_key_valid_until: datetime | None
    key_rotated_at: datetime | None
    created_at: datetime


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def normalize_region(region: str) -> str:
    """An upper-case ISO 3166 alpha-2 region that phone parsing knows."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(
            f"region: {region!r} is not a known ISO 3166 alpha-2 region",
            details={"field": "region", "value": region},
        )
    return code


async def create_tenant(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    region: str,
    provider: str,
    config: Mapping[str, object] | None = None,
    box: SecretReader | None = None,
) -> CreatedTenant:
    """A tenant, its API key (returned once, stored hashed) and its default session.

    ``box`` encrypts the session's secrets; only a provider with secret fields needs it.
    """
    if not name.strip():
        raise ValidationFailed("name: must not be empty", details={"field": "name"})
    plugin_for(provider)  # an unknown provider is refused before anything is stored
    now = clock.now()
    api_key = new_api_key()
    repo = TenantRepository(session)
    tenant = await repo.add_tenant(
        Tenant(
            name=name.strip(),
            api_key_hash=hash_api_key(api_key),
            api_key_prefix=api_key[:KEY_PREFIX_CHARS],
            default_region=normalize_region(region),
            created_at=now,
        )
    )
    wa_session = await add_session(
        session,
        clock,
        box or _NO_SECRETS,
        TenantContext.of(tenant),
        SessionCreate(provider=provider, config=dict(config or {})),
    )
    return CreatedTenant(tenant_id=tenant.id, api_key=api_key, session_id=wa_session.id)


class _NoSecrets:
    """For tenants created without a key at hand: a provider with secrets is refused."""

    def encrypt(self, values: Mapping[str, str]) -> str:
        raise ValidationFailed("this provider's secrets need the secret key to be stored")

    def decrypt(self, token: str) -> dict[str, str]:
        raise ValidationFailed("this provider's secrets need the secret key to be read")


_NO_SECRETS = _NoSecrets()


async def authenticate(session: AsyncSession, api_key: str, now: datetime) -> TenantContext | None:
    """The tenant that owns ``api_key`` (its current key, or a rotated one still in grace)."""
    tenant = await TenantRepository(session).by_api_key_hash(hash_api_key(api_key), now)
    if tenant is None:
        return None
    return TenantContext.of(tenant)


async def rotate_api_key(
    session: AsyncSession, clock: Clock, tenant_id: int, grace: timedelta
) -> RotatedKey:
    """A new API key for the tenant (returned once, stored hashed).

    The key it replaces keeps working until now + ``grace``; with a zero grace it
    stops at once. A tenant has at most one previous key: rotating again within a
    grace period ends the older key's grace at once.
    """
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise ValidationFailed(
            f"grace: must be between 0 and {MAX_GRACE.days} days",
            details={"field": "grace", "value": grace.total_seconds()},
        )
    repo = TenantRepository(session)
    tenant = await repo.get_for_update(tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found", details={"tenant_id": tenant_id})
    now = clock.now()
    api_key = new_api_key()
    keeps_old = grace > timedelta(0)
    expires_at = now + grace if keeps_old else None
    await repo.replace_api_key(
        tenant,
        key_hash=hash_api_key(api_key),
        key_prefix=api_key[:KEY_PREFIX_CHARS],
        previous_hash=tenant.api_key_hash if keeps_old else None,
        previous_prefix=tenant.api_key_prefix if keeps_old else None,
        previous_expires_at=expires_at,
        rotated_at=now,
    )
    return RotatedKey(
        tenant_id=tenant.id,
        api_key=api_key,
        api_key_prefix=tenant.api_key_prefix,
        previous_key_prefix=tenant.previous_api_key_prefix,
        previous_key_valid_until=expires_at,
    )


async def list_tenants(session: AsyncSession, clock: Clock) -> list[TenantSummary]:
    """Every tenant, oldest first; a previous key only while it still works."""
    now = clock.now()
    summaries = []
    for tenant in await TenantRepository(session).list_all():
        expires_at = tenant.previous_key_expires_at
        in_grace = expires_at is not None and expires_at > now
        summaries.append(
            TenantSummary(
                tenant_id=tenant.id,
                name=tenant.name,
                region=tenant.default_region,
                api_key_prefix=tenant.api_key_prefix,
                previous_key_prefix=tenant.previous_api_key_prefix if in_grace else None,
                previous_key_valid_until=expires_at if in_grace else None,
                key_rotated_at=tenant.key_rotated_at,
                created_at=tenant.created_at,
            )
        )
    return summaries
