"""Dashboard routes of the Sessions pages: list, add, edit and delete WhatsApp sessions,
and connect the ones whose phone is linked by QR code (the Baileys gateway).

Thin like the others: read the form (``session_form``), call one sessions service
function, render (``session_pages``) or redirect (Post/Redirect/Get).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from wabroadcast.api.deps import Ctx
from wabroadcast.context import AppContext
from wabroadcast.domain.errors import (
    AppError,
    ProviderSetupFailed,
    SessionInUse,
    SessionNotLinkable,
)
from wabroadcast.providers.plugin import ProviderPlugin
from wabroadcast.providers.registry import PLUGINS, plugin_for
from wabroadcast.sessions.schemas import SESSION_ID_PATTERN, LinkOut, SessionOut
from wabroadcast.tenants.service import TenantContext
from wabroadcast.tenants.settings import read_settings
from wabroadcast.web import pages, session_form, session_pages
from wabroadcast.web.auth import SignedInView, checked_form
from wabroadcast.web.rendering import DashboardRoute, PageView, isolated, see_other, url
from wabroadcast.web.session_form import SessionProblem

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

Cursor = Annotated[str | None, Query(max_length=200)]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]
SESSION_NOTICES = {
    "created": "sessions.created",
    "saved": "sessions.saved",
    "deleted": "sessions.deleted",
    "limits_saved": "limits.saved",
    "quiet_saved": "quiet.saved",
    "quiet_invalid": "quiet.invalid",
}
CONNECT_NOTICES = {"logged_out": "logout.done"}
# WhatsApp replaces a pairing QR code about every 20 s: the Connect page polls faster.
CONNECT_REFRESH_MS = 2000


@router.get("/sessions")
async def sessions_page(
    ctx: Ctx, view: SignedInView, cursor: Cursor = None, notice: str | None = None
) -> Response:
    page = await session_pages.sessions_list(ctx, view.signed_in.tenant, cursor=cursor)
    return view.render(
        "sessions.html",
        page=page,
        connection=page.connection,
        account_hold=None
        if page.connection is None
        else await pages.account_hold(ctx, view.signed_in.tenant, page.connection),
        plugins=session_pages.plugins(),
        tenant_settings=await read_settings(ctx, view.signed_in.tenant.tenant_id),
        cursor=cursor or "",
        notice=view.t(SESSION_NOTICES[notice]) if notice in SESSION_NOTICES else None,
        nav="sessions",
    )


async def _session_form(
    ctx: Ctx,
    view: PageView,
    plugin: ProviderPlugin,
    values: dict[str, str],
    *,
    editing: SessionOut | None = None,
    status_code: int = 200,
    problem: SessionProblem | None = None,
) -> Response:
    """The add or edit form; ``values`` never holds a secret (those inputs stay empty)."""
    return view.render(
        "session_form.html",
        status_code=status_code,
        **await session_pages.header(ctx, view.signed_in.tenant),
        plugin=plugin,
        fields=session_form.config_fields(plugin),
        values=values,
        editing=editing,
        linkable=editing is not None and session_pages.linkable(ctx, plugin.kind),
        stored=session_form.stored_secrets(plugin, editing) if editing else {},
        problem=problem,
        nav="sessions",
    )


@router.get("/sessions/new")
async def new_session(
    ctx: Ctx, view: SignedInView, provider: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    plugin = PLUGINS.get(provider or "")
    if plugin is None:
        return view.render(
            "session_providers.html",
            status_code=200 if provider is None else 404,
            **await session_pages.header(ctx, view.signed_in.tenant),
            plugins=session_pages.plugins(),
            unknown=provider,
            nav="sessions",
        )
    return await _session_form(ctx, view, plugin, session_form.initial_values(plugin))


@router.post("/sessions")
async def create_session(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Post/Redirect/Get; a refusal shows the form again without any secret in it."""
    form = await checked_form(request, view.signed_in)
    kind = form.get("provider")
    plugin = plugin_for(kind if isinstance(kind, str) else "")
    submission = session_form.read_submission(plugin, form, editing=False)
    try:
        await session_pages.create(ctx, view.signed_in.tenant, plugin, submission)
    except AppError as exc:
        return await _session_form(
            ctx,
            view,
            plugin,
            submission.kept,
            status_code=exc.http_status,
            problem=session_form.describe(exc, view.t, plugin),
        )
    return see_other(url("/sessions", notice="created"))


async def _edit_form(
    ctx: Ctx,
    view: PageView,
    session_id: str,
    *,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    problem: SessionProblem | None = None,
) -> Response:
    stored = await session_pages.get(ctx, view.signed_in.tenant, session_id)
    plugin = plugin_for(stored.provider)
    shown = session_form.stored_values(plugin, stored) if values is None else values
    return await _session_form(
        ctx, view, plugin, shown, editing=stored, status_code=status_code, problem=problem
    )


@router.get("/sessions/{session_id}/edit")
async def edit_session(session_id: SessionId, ctx: Ctx, view: SignedInView) -> Response:
    return await _edit_form(ctx, view, session_id)


async def _limits_form(
    ctx: Ctx,
    view: PageView,
    session_id: str,
    *,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    problem: SessionProblem | None = None,
) -> Response:
    """The form of a session's daily cap, warm-up, pause error rate and number checks."""
    stored = await session_pages.get(ctx, view.signed_in.tenant, session_id)
    return view.render(
        "session_limits.html",
        status_code=status_code,
        **await session_pages.header(ctx, view.signed_in.tenant),
        session=stored,
        values=session_form.limits_values(stored) if values is None else values,
        problem=problem,
        nav="sessions",
    )


@router.get("/sessions/{session_id}/limits")
async def limits_page(session_id: SessionId, ctx: Ctx, view: SignedInView) -> Response:
    return await _limits_form(ctx, view, session_id)


@router.post("/sessions/{session_id}/limits")
async def set_limits(
    session_id: SessionId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    """Post/Redirect/Get; empty inputs leave their setting as it is."""
    form = await checked_form(request, view.signed_in)
    submission = session_form.read_limits(form)
    try:
        await session_pages.update_limits(ctx, view.signed_in.tenant, session_id, submission)
    except AppError as exc:
        if exc.http_status == 404:
            raise
        return await _limits_form(
            ctx,
            view,
            session_id,
            values=submission.kept,
            status_code=exc.http_status,
            problem=session_form.describe(exc, view.t, None),
        )
    return see_other(url("/sessions", notice="limits_saved"))


@router.get("/sessions/{session_id}")
@router.get("/sessions/{session_id}/delete")
async def session_form_address(session_id: SessionId, view: SignedInView) -> Response:
    """The address a refused form was posted to (the language switch, a reload): its form."""
    return see_other(f"/sessions/{session_id}/edit")


@router.post("/sessions/{session_id}")
async def update_session(
    session_id: SessionId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    """Empty secret inputs are left out of the change: the stored secrets stay."""
    form = await checked_form(request, view.signed_in)
    tenant = view.signed_in.tenant
    plugin = plugin_for((await session_pages.get(ctx, tenant, session_id)).provider)
    submission = session_form.read_submission(plugin, form, editing=True)
    try:
        await session_pages.update(ctx, tenant, session_id, plugin, submission)
    except AppError as exc:
        if exc.http_status == 404:
            raise
        return await _edit_form(
            ctx,
            view,
            session_id,
            values=submission.kept,
            status_code=exc.http_status,
            problem=session_form.describe(exc, view.t, plugin),
        )
    return see_other(url("/sessions", notice="saved"))


@router.post("/sessions/{session_id}/delete")
async def delete_session(
    session_id: SessionId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    form = await checked_form(request, view.signed_in)
    if form.get("confirm") != "yes":
        problem = SessionProblem("NOT_CONFIRMED", view.t("delete.unconfirmed", id=session_id))
        return await _edit_form(ctx, view, session_id, status_code=400, problem=problem)
    try:
        await session_pages.delete(ctx, view.signed_in.tenant, session_id)
    except SessionInUse as exc:
        problem = session_form.describe(exc, view.t, None)
        return await _edit_form(ctx, view, session_id, status_code=409, problem=problem)
    return see_other(url("/sessions", notice="deleted"))


# --- connecting a phone by QR code (providers that link that way) --------------------


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """Why the Connect page shows no link state: a sentence in the page's language."""

    code: str
    text: str


async def _on_gateway(
    view: PageView, call: Awaitable[LinkOut]
) -> tuple[LinkOut | None, LinkProblem | None, int]:
    """One linking call; a gateway that does not answer is a sentence, not an error page."""
    try:
        return await call, None, 200
    except ProviderSetupFailed as exc:
        text = view.t("connect.gateway_failed", reason=isolated(exc.message))
        return None, LinkProblem(exc.error_code, text), exc.http_status


def _not_linkable(view: PageView, plugin: ProviderPlugin) -> LinkProblem:
    return LinkProblem(
        SessionNotLinkable.error_code, view.t("connect.not_linkable", provider=plugin.title)
    )


async def _connect_page(
    ctx: Ctx,
    view: PageView,
    stored: SessionOut,
    *,
    link: LinkOut | None,
    problem: LinkProblem | None = None,
    unconfirmed: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
    live: bool = False,
) -> Response:
    """The Connect page, or (a live poll) its parts that change: the link state and the header."""
    plugin = plugin_for(stored.provider)
    linkable = session_pages.linkable(ctx, stored.provider)
    values: dict[str, Any] = {
        "session": stored,
        "plugin": plugin,
        "linkable": linkable,
        "link": link,
        "me": session_pages.linked_account(link.me) if link else None,
        "problem": problem,
        **await session_pages.header(ctx, view.signed_in.tenant),
    }
    if live or view.live:
        return view.render("session_connect_live.html", **values)
    return view.render(
        "session_connect.html",
        status_code=status_code,
        unconfirmed=unconfirmed,
        notice=notice,
        live_page=linkable,
        live_url=f"/sessions/{stored.session_id}/connect/live",
        live_refresh_ms=CONNECT_REFRESH_MS,
        nav="sessions",
        **values,
    )


async def _linking_step(
    ctx: Ctx,
    view: PageView,
    session_id: str,
    step: Callable[[AppContext, TenantContext, str], Awaitable[LinkOut]],
) -> Response | None:
    """Connect or log out a session linked by QR code here; the page to show instead when
    its provider's own console links it, or the gateway did not do it; None when done."""
    tenant = view.signed_in.tenant
    stored = await session_pages.get(ctx, tenant, session_id)
    refused = await _not_linkable_page(ctx, view, stored)
    if refused is not None:
        return refused
    link, problem, status_code = await _on_gateway(view, step(ctx, tenant, session_id))
    if problem is None:
        return None
    return await _connect_page(
        ctx, view, stored, link=link, problem=problem, status_code=status_code
    )


async def _not_linkable_page(
    ctx: Ctx, view: PageView, stored: SessionOut, *, live: bool = False
) -> Response | None:
    """The sentence that the provider's own console connects the session; None when the
    session is linked by QR code here."""
    if session_pages.linkable(ctx, stored.provider):
        return None
    problem = _not_linkable(view, plugin_for(stored.provider))
    return await _connect_page(
        ctx, view, stored, link=None, problem=problem, status_code=409, live=live
    )


async def _show_link(
    ctx: Ctx,
    view: PageView,
    session_id: str,
    *,
    unconfirmed: str | None = None,
    notice: str | None = None,
    status_code: int | None = None,
    live: bool = False,
) -> Response:
    """The Connect page with the link state the gateway reports now."""
    tenant = view.signed_in.tenant
    stored = await session_pages.get(ctx, tenant, session_id)
    refused = await _not_linkable_page(ctx, view, stored, live=live)
    if refused is not None:
        return refused
    link, problem, gateway_status = await _on_gateway(
        view, session_pages.link_state(ctx, tenant, session_id)
    )
    return await _connect_page(
        ctx,
        view,
        stored,
        link=link,
        problem=problem,
        unconfirmed=unconfirmed,
        notice=notice,
        # A live poll always succeeds: the gateway's silence is shown in the page.
        status_code=status_code or (200 if live or view.live else gateway_status),
        live=live,
    )


@router.get("/sessions/{session_id}/connect")
async def connect_page(
    session_id: SessionId, ctx: Ctx, view: SignedInView, notice: str | None = None
) -> Response:
    """Where linking the session's phone stands: its QR code until the phone is linked."""
    shown = view.t(CONNECT_NOTICES[notice], id=session_id) if notice in CONNECT_NOTICES else None
    return await _show_link(ctx, view, session_id, notice=shown)


@router.get("/sessions/{session_id}/connect/live")
async def connect_live(session_id: SessionId, ctx: Ctx, view: SignedInView) -> Response:
    """The Connect page's changing parts, polled by dashboard.js (a new QR code, connected)."""
    return await _show_link(ctx, view, session_id, live=True)


@router.post("/sessions/{session_id}/connect")
async def connect(
    session_id: SessionId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    """Start the session on its gateway, then show its Connect page (Post/Redirect/Get)."""
    await checked_form(request, view.signed_in)
    refused = await _linking_step(ctx, view, session_id, session_pages.connect)
    return refused or see_other(f"/sessions/{session_id}/connect")


@router.get("/sessions/{session_id}/logout")
async def logout_address(session_id: SessionId, view: SignedInView) -> Response:
    """The address a refused log-out was posted to (the language switch, a reload)."""
    return see_other(f"/sessions/{session_id}/connect")


@router.post("/sessions/{session_id}/logout")
async def logout(session_id: SessionId, request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Unlink the session's phone (confirmed by a tick, like deleting a session)."""
    form = await checked_form(request, view.signed_in)
    if form.get("confirm") != "yes":
        unconfirmed = view.t("logout.unconfirmed", id=session_id)
        return await _show_link(ctx, view, session_id, unconfirmed=unconfirmed, status_code=400)
    refused = await _linking_step(ctx, view, session_id, session_pages.logout)
    return refused or see_other(url(f"/sessions/{session_id}/connect", notice="logged_out"))
