"""Creating tenants and resolving who is calling.

API keys are random 256-bit secrets, so a SHA-256 of the key is enough to store
(no slow KDF needed) and lets us look the caller up by an indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from wabroadcast.clock import Clock
from wabroadcast.db.models import Tenant
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.config import SecretReader
from wabroadcast.sessions.schemas import SessionCreate
from wabroadcast.sessions.service import add_session
from wabroadcast.tenants.repository import TenantRepository

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
class CreatedTenant:
    tenant_id: int
    api_key: str
    session_id: str


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


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
