"""What the Sessions pages show, gathered from the services the API uses.

(A tenant's WhatsApp sessions; ``web.sessions`` is the sign-in session.) Adding,
changing and deleting go through the same service functions as the API's
``/api/whatsapp/sessions`` routes, so the form gets the same validation, the
same encryption of secrets and the same refusals.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from wabroadcast.context import AppContext
from wabroadcast.domain.errors import AppError, SessionNotFound
from wabroadcast.providers.base import Linkable
from wabroadcast.providers.plugin import ProviderPlugin
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.sessions import linking
from wabroadcast.sessions import service as sessions
from wabroadcast.sessions.schemas import LinkOut, SessionOut, SessionStatusOut
from wabroadcast.tenants.service import TenantContext
from wabroadcast.web import pages
from wabroadcast.web.session_form import (
    LimitsSubmission,
    Submission,
    create_body,
    limits_body,
    update_body,
)

# Every session on a page is checked at once, so the page waits about one
# connection_check_timeout_s at most; the page size bounds how many checks run.
SESSIONS_PER_PAGE = 20


@dataclass(frozen=True, slots=True)
class SessionRow:
    session: SessionOut
    provider_title: str
    # None: the check itself could not be made (the session went away meanwhile).
    status: SessionStatusOut | None
    # Its phone is linked here by QR code (Connect); other providers have their own console.
    linkable: bool


@dataclass(frozen=True, slots=True)
class SessionsList:
    rows: list[SessionRow]
    next_cursor: str | None
    # The default session's state, for the header; None when the tenant has no session.
    connection: SessionStatusOut | None
    # Each distinct webhook warning of the page's sessions, shown once above them.
    webhook_warnings: list[str]


def plugins() -> list[ProviderPlugin]:
    """Every provider a session can be added with, in registry order."""
    return list(PLUGINS.values())


def provider_title(kind: str) -> str:
    plugin = PLUGINS.get(kind)
    return kind if plugin is None else plugin.title


def linkable(ctx: AppContext, kind: str) -> bool:
    """Whether sessions of this provider are linked by scanning a QR code here (Connect)."""
    if kind not in PLUGINS:
        return False
    return isinstance(ctx.providers.for_kind(kind), Linkable)


_JID = re.compile(r"^(\d{5,15})(?::\d+)?@s\.whatsapp\.net$")


def linked_account(me: str | None) -> str | None:
    """The linked WhatsApp account as a person reads it: ``972501234567:3@s.whatsapp.net``
    is ``+972501234567``; anything else is shown as the gateway gave it."""
    if not me:
        return None
    found = _JID.match(me)
    return f"+{found.group(1)}" if found else me


async def header_connection(ctx: AppContext, tenant: TenantContext) -> SessionStatusOut | None:
    """The default session's state; None when the tenant has no session to check."""
    try:
        return await sessions.session_status(ctx, tenant, None)
    except SessionNotFound:
        return None


async def header(ctx: AppContext, tenant: TenantContext) -> dict[str, Any]:
    """What every page's header shows: the default session's state, and the broadcast an
    account-level refusal paused while that session is connected (None: none)."""
    state = await header_connection(ctx, tenant)
    hold = None if state is None else await pages.account_hold(ctx, tenant, state)
    return {"connection": state, "account_hold": hold}


async def _status(
    ctx: AppContext, tenant: TenantContext, session_id: str
) -> SessionStatusOut | None:
    try:
        return await sessions.session_status(ctx, tenant, session_id)
    except AppError:
        return None


async def sessions_list(
    ctx: AppContext, tenant: TenantContext, *, cursor: str | None
) -> SessionsList:
    """One page of the tenant's sessions, each with its connection state checked now.

    ``session_status`` bounds each check by ``connection_check_timeout_s``; the
    checks run concurrently, so one slow provider does not hold up the others.
    """
    page = await sessions.list_sessions(ctx, tenant, cursor=cursor, limit=SESSIONS_PER_PAGE)
    statuses = await asyncio.gather(*(_status(ctx, tenant, s.session_id) for s in page.items))
    rows = [
        SessionRow(item, provider_title(item.provider), status, linkable(ctx, item.provider))
        for item, status in zip(page.items, statuses, strict=True)
    ]
    default = next((row.status for row in rows if row.session.default), None)
    warnings = [row.session.webhook_url_warning for row in rows if row.session.webhook_url_warning]
    return SessionsList(
        rows=rows,
        next_cursor=page.next_cursor,
        connection=default if default is not None else await header_connection(ctx, tenant),
        webhook_warnings=list(dict.fromkeys(warnings)),
    )


async def get(ctx: AppContext, tenant: TenantContext, session_id: str) -> SessionOut:
    return await sessions.get_session(ctx, tenant, session_id)


async def create(
    ctx: AppContext, tenant: TenantContext, plugin: ProviderPlugin, submission: Submission
) -> SessionOut:
    return await sessions.create_session(ctx, tenant, create_body(plugin, submission))


async def update(
    ctx: AppContext,
    tenant: TenantContext,
    session_id: str,
    plugin: ProviderPlugin,
    submission: Submission,
) -> SessionOut:
    return await sessions.update_session(ctx, tenant, session_id, update_body(plugin, submission))


async def update_limits(
    ctx: AppContext, tenant: TenantContext, session_id: str, submission: LimitsSubmission
) -> SessionOut:
    """The session's daily cap, warm-up, pause error rate and number checks, as the API's
    PATCH sets them."""
    return await sessions.update_session(ctx, tenant, session_id, limits_body(submission))


async def delete(ctx: AppContext, tenant: TenantContext, session_id: str) -> None:
    await sessions.delete_session(ctx, tenant, session_id)


async def connect(ctx: AppContext, tenant: TenantContext, session_id: str) -> LinkOut:
    """Start the session on its gateway: its QR code until the phone is linked."""
    return await linking.connect_session(ctx, tenant, session_id)


async def link_state(ctx: AppContext, tenant: TenantContext, session_id: str) -> LinkOut:
    return await linking.link_state(ctx, tenant, session_id)


async def logout(ctx: AppContext, tenant: TenantContext, session_id: str) -> LinkOut:
    return await linking.logout_session(ctx, tenant, session_id)
