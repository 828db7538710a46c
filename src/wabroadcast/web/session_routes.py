"""Dashboard routes of the Sessions pages: list, add, edit and delete WhatsApp sessions.

Thin like the others: read the form (``session_form``), call one sessions service
function, render (``session_pages``) or redirect (Post/Redirect/Get).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from wabroadcast.api.deps import Ctx
from wabroadcast.domain.errors import AppError
from wabroadcast.providers.plugin import ProviderPlugin
from wabroadcast.providers.registry import PLUGINS, plugin_for
from wabroadcast.sessions.schemas import SESSION_ID_PATTERN, SessionOut
from wabroadcast.sessions.service import SessionInUse
from wabroadcast.web import session_form, session_pages
from wabroadcast.web.auth import SignedInView, checked_form
from wabroadcast.web.rendering import DashboardRoute, PageView, see_other, url
from wabroadcast.web.session_form import SessionProblem

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

Cursor = Annotated[str | None, Query(max_length=200)]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]
SESSION_NOTICES = {
    "created": "sessions.created",
    "saved": "sessions.saved",
    "deleted": "sessions.deleted",
}


@router.get("/sessions")
async def sessions_page(
    ctx: Ctx, view: SignedInView, cursor: Cursor = None, notice: str | None = None
) -> Response:
    page = await session_pages.sessions_list(ctx, view.signed_in.tenant, cursor=cursor)
    return view.render(
        "sessions.html",
        page=page,
        connection=page.connection,
        plugins=session_pages.plugins(),
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
        connection=await session_pages.header_connection(ctx, view.signed_in.tenant),
        plugin=plugin,
        fields=session_form.config_fields(plugin),
        values=values,
        editing=editing,
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
            connection=await session_pages.header_connection(ctx, view.signed_in.tenant),
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
