"""Linking a phone to a session by QR code (providers that do it: the Baileys gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from wabroadcast.db.models import WhatsAppSession
from wabroadcast.domain.errors import AppError, ProviderSetupFailed, SessionNotLinkable
from wabroadcast.providers.base import Linkable, LinkState, SessionRef
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.repository import SessionRepository
from wabroadcast.sessions.schemas import LinkOut, QrCode
from wabroadcast.sessions.service import session_row, webhook_url

if TYPE_CHECKING:
    from wabroadcast.context import AppContext
    from wabroadcast.tenants.service import TenantContext


LINK_STATES = frozenset({"connected", "connecting", "qr", "logged_out", "closed", "not_started"})


def _link_out(session_id: str, link: LinkState) -> LinkOut:
    return LinkOut(
        session_id=session_id,
        state=link.state if link.state in LINK_STATES else "closed",
        qr=None if link.qr_text is None else QrCode(text=link.qr_text, png_data_url=link.qr_png),
        me=link.me,
        detail=link.detail,
    )


async def _linkable(
    ctx: AppContext, tenant: TenantContext, session_id: str
) -> tuple[WhatsAppSession, Linkable, SessionRef]:
    async with ctx.database.transaction() as db:
        row = await session_row(SessionRepository(db), tenant, session_id)
    provider = ctx.providers.for_kind(row.provider)
    if not isinstance(provider, Linkable):
        raise SessionNotLinkable(
            f"{plugin_for(row.provider).title} sessions are connected in the provider's own "
            "console, not by QR code here",
            details={"session_id": row.id, "provider": row.provider},
        )
    return row, provider, ctx.session_refs.of(row)


async def _on_gateway(ctx: AppContext, row: WhatsAppSession, call: Awaitable[LinkState]) -> LinkOut:
    """One call to the session's provider, bounded in time; no answer is a 502."""
    timeout = ctx.settings.connection_check_timeout_s
    try:
        return _link_out(row.id, await asyncio.wait_for(call, timeout))
    except TimeoutError:
        raise ProviderSetupFailed(
            f"{plugin_for(row.provider).title} did not answer within {timeout:g} s",
            details={"session_id": row.id},
        ) from None
    except (OSError, ValueError) as exc:
        raise ProviderSetupFailed(
            f"{plugin_for(row.provider).title} could not be reached: {exc}"[:300],
            details={"session_id": row.id},
        ) from None
    except Exception as exc:
        if isinstance(exc, AppError):
            raise
        raise ProviderSetupFailed(
            f"{plugin_for(row.provider).title} failed: {exc}"[:300],
            details={"session_id": row.id},
        ) from None


async def connect_session(ctx: AppContext, tenant: TenantContext, session_id: str) -> LinkOut:
    """Start the session on its gateway (telling it where to call back): its QR code
    until the phone is linked."""
    row, provider, ref = await _linkable(ctx, tenant, session_id)
    url, _ = webhook_url(ctx, row)
    return await _on_gateway(ctx, row, provider.connect(ref, url or ""))


async def link_state(ctx: AppContext, tenant: TenantContext, session_id: str) -> LinkOut:
    row, provider, ref = await _linkable(ctx, tenant, session_id)
    return await _on_gateway(ctx, row, provider.link_state(ref))


async def logout_session(ctx: AppContext, tenant: TenantContext, session_id: str) -> LinkOut:
    row, provider, ref = await _linkable(ctx, tenant, session_id)
    return await _on_gateway(ctx, row, provider.logout(ref))
