"""Signing in to the dashboard with an API key, and recognising the browser afterwards.

The browser gets a random token in an HttpOnly, SameSite=Strict cookie; the
database keeps its SHA-256 with the tenant and a CSRF token for the forms. A
session ends at sign-out or after ``SESSION_TTL``, whichever comes first.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from wabroadcast.context import AppContext
from wabroadcast.db.models import DashboardSession
from wabroadcast.tenants.service import TenantContext, authenticate
from wabroadcast.web.repository import DashboardSessionRepository

SESSION_TTL = timedelta(hours=12)
# Longer than any token we issue; a longer cookie is someone else's, not worth hashing.
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in browser: whose data it sees and the token its forms must carry."""

    tenant: TenantContext
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    visitor: Visitor
    expires_at: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TooManyFailures:
    """The address failed to sign in too often lately: it must wait, whatever key it brings."""

    retry_after_s: int

    @property
    def minutes(self) -> int:
        """The wait in whole minutes, rounded up: what the page tells a person."""
        return math.ceil(self.retry_after_s / 60)


async def sign_in(
    ctx: AppContext, api_key: str, address: str
) -> NewSession | TooManyFailures | None:
    """A new session for the tenant owning ``api_key``; None if no tenant does.

    Each failure counts against ``address`` (the client's); once it has used up
    its failures (``WABROADCAST_SIGNIN_MAX_FAILURES``) every attempt from it is
    refused, a right key too, until time gives one back. Success counts nothing.
    """
    now = ctx.clock.now()
    wait = await ctx.rate_limits.signin_wait(address, now)
    if wait:
        return TooManyFailures(wait)
    new = await _new_session(ctx, api_key, now) if api_key else None
    if new is None:
        wait = await ctx.rate_limits.signin_failed(address, now)
        return TooManyFailures(wait) if wait else None
    return new


async def _new_session(ctx: AppContext, api_key: str, now: datetime) -> NewSession | None:
    async with ctx.database.transaction() as db:
        tenant = await authenticate(db, api_key.strip(), now)
        if tenant is None:
            return None
        repo = DashboardSessionRepository(db)
        await repo.purge_expired(now)
        token = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        expires_at = now + SESSION_TTL
        await repo.add(
            DashboardSession(
                token_hash=hash_token(token),
                tenant_id=tenant.tenant_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return NewSession(token, Visitor(tenant, csrf_token), expires_at)


async def visitor_for(ctx: AppContext, token: str) -> Visitor | None:
    """Who holds this session token, if it is one of ours and still valid."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    async with ctx.database.transaction() as db:
        found = await DashboardSessionRepository(db).live(hash_token(token), ctx.clock.now())
    if found is None:
        return None
    row, tenant = found
    return Visitor(TenantContext.of(tenant), row.csrf_token)


async def sign_out(ctx: AppContext, token: str) -> None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return
    async with ctx.database.transaction() as db:
        await DashboardSessionRepository(db).delete(hash_token(token))


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so response timing does not reveal a CSRF token."""
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
