"""Dashboard routes: each parses the request, calls one function of ``pages`` and renders.

None of them is in the OpenAPI document: they answer browsers with HTML, and
the API's contract stays the API's.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response, StreamingResponse

from wabroadcast.api.deps import Ctx
from wabroadcast.broadcasts.schemas import MAX_MESSAGE_CHARS
from wabroadcast.domain.errors import AppError, BroadcastFinished, IdempotencyKeyMismatch
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus
from wabroadcast.sessions.schemas import SESSION_ID_PATTERN
from wabroadcast.texts import LANGUAGES
from wabroadcast.web import (
    opt_out_routes,
    pages,
    session_routes,
    sessions,
    settings_routes,
    webhook_routes,
)
from wabroadcast.web.auth import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    AnonymousView,
    SignedInView,
    checked_form,
    clear_session_cookie,
    set_session_cookie,
    set_signin_cookie,
    signin_token_matches,
)
from wabroadcast.web.forms import Draft, DraftProblem, read_draft
from wabroadcast.web.i18n import LANGUAGE_COOKIE
from wabroadcast.web.messages import Problem, describe
from wabroadcast.web.rendering import (
    DashboardRoute,
    PageView,
    safe_next,
    see_other,
    static_response,
    url,
)

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

Cursor = Annotated[str | None, Query(max_length=200)]
BroadcastId = Annotated[int, Path(ge=1, le=2**63 - 1)]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]
NOTICES = {
    "cancelled": "cancel.done",
    "already_finished": "cancel.finished",
    "resumed": "resume.done",
    "finished_before_resume": "resume.finished",
    "paused": "control.pause.done",
    "finished_before_pause": "control.pause.finished",
    "finished_before_retry": "control.retry.finished",
}
# The controls on a broadcast's page, each confirmed by a tick: the sentence asking for it.
UNCONFIRMED = {
    "pause": "control.pause.unconfirmed",
    "resume": "control.resume.unconfirmed",
    "retry-failed": "control.retry.unconfirmed",
}


# --- signing in and out, language ------------------------------------------------


def _sign_in_form(
    request: Request,
    view: PageView,
    next_path: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    """The sign-in page, with a fresh double-submit token in its form and in a cookie."""
    token = secrets.token_urlsafe(24)
    response = view.render(
        "sign_in.html",
        status_code=status_code,
        next_path=safe_next(next_path),
        signin_token=token,
        error=error,
        notice=notice,
    )
    set_signin_cookie(response, request, token)
    return response


@router.get("/sign-in")
async def sign_in_page(
    request: Request, view: AnonymousView, next: str = "/", signed_out: bool = False
) -> Response:
    notice = view.t("signin.signed_out") if signed_out else None
    return _sign_in_form(request, view, next, notice=notice)


@router.post("/sign-in")
async def sign_in(request: Request, ctx: Ctx, view: AnonymousView) -> Response:
    form = await request.form()
    next_path = safe_next(str(form.get("next") or "/"))
    if not signin_token_matches(request, form):
        return _sign_in_form(
            request, view, next_path, status_code=403, error=view.t("signin.form_expired")
        )
    api_key = form.get("api_key")
    address = request.client.host if request.client else "unknown"
    new = await sessions.sign_in(ctx, api_key if isinstance(api_key, str) else "", address)
    if isinstance(new, sessions.TooManyFailures):
        minutes = new.minutes
        wait = view.t.plural("signin.too_many", minutes)
        response = _sign_in_form(request, view, next_path, status_code=429, error=wait)
        response.headers["Retry-After"] = str(new.retry_after_s)
        return response
    if new is None:
        return _sign_in_form(
            request, view, next_path, status_code=401, error=view.t("signin.invalid")
        )
    response = see_other(next_path)
    set_session_cookie(response, request, new)
    response.delete_cookie(SIGNIN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    await checked_form(request, view.signed_in)
    await sessions.sign_out(ctx, request.cookies.get(SESSION_COOKIE, ""))
    response = see_other("/sign-in?signed_out=true")
    clear_session_cookie(response, request)
    return response


@router.get("/language/{language}")
async def choose_language(language: str, next: str = "/") -> Response:
    response = see_other(safe_next(next))
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, path="/", samesite="lax"
        )
    return response


@router.get("/static/{name}")
async def static_file(name: str, v: str | None = None) -> Response:
    return static_response(name, v)


# --- overview ------------------------------------------------------------------


@router.get("/")
async def overview(
    ctx: Ctx, view: SignedInView, status: BroadcastStatus | None = None, cursor: Cursor = None
) -> Response:
    page = await pages.overview(ctx, view.signed_in.tenant, status=status, cursor=cursor)
    return view.render(
        "overview.html",
        live_template="overview_live.html",
        page=page,
        connection=page.connection,
        account_hold=page.account_hold,
        now=ctx.clock.now(),
        status_filter=status.value if status else "",
        cursor=cursor or "",
        live_page=True,
        nav="overview",
    )


# --- new broadcast -------------------------------------------------------------


async def _new_form(
    ctx: Ctx,
    view: PageView,
    draft: Draft,
    *,
    status_code: int = 200,
    problem: Problem | None = None,
    preview: pages.Preview | None = None,
    new_key: bool = False,
) -> Response:
    tenant = view.signed_in.tenant
    state = await pages.connection(ctx, tenant)
    hold = await pages.account_hold(ctx, tenant, state)
    if view.live:
        return view.render("connection_live.html", connection=state, account_hold=hold)
    key = draft.idempotency_key if draft.idempotency_key and not new_key else None
    return view.render(
        "new_broadcast.html",
        status_code=status_code,
        connection=state,
        account_hold=hold,
        draft=draft,
        idempotency_key=key or "web-" + secrets.token_urlsafe(18),
        problem=problem,
        preview=preview,
        csv_lost=draft.csv_filename is not None,
        max_message_chars=MAX_MESSAGE_CHARS,
        region=view.signed_in.tenant.default_region,
        live_page=True,
        # Shown again after a POST, this page refreshes from the form's own address.
        live_url="/broadcasts/new",
        nav="new",
    )


def _draft_read_so_far(exc: AppError, draft: Draft) -> Draft:
    """The form as far as it could be read, to show again next to the problem."""
    return exc.draft if isinstance(exc, DraftProblem) and exc.draft is not None else draft


@router.get("/broadcasts/new")
async def new_broadcast(ctx: Ctx, view: SignedInView) -> Response:
    return await _new_form(ctx, view, Draft())


@router.post("/broadcasts/preview")
async def preview_broadcast(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    form = await checked_form(request, view.signed_in)
    draft = Draft()
    try:
        draft = await read_draft(form, view.signed_in.tenant.default_region)
        preview = await pages.preview(ctx, view.signed_in.tenant, draft)
    except AppError as exc:
        draft = _draft_read_so_far(exc, draft)
        problem = describe(exc, view.t)
        if view.fragment:
            return view.render("_error_box.html", status_code=exc.http_status, text=problem.text)
        return await _new_form(ctx, view, draft, status_code=exc.http_status, problem=problem)
    if view.fragment:
        return view.render("_preview.html", preview=preview)
    return await _new_form(ctx, view, draft, preview=preview)


@router.post("/broadcasts")
async def submit_broadcast(request: Request, ctx: Ctx, view: SignedInView) -> Response:
    """Post/Redirect/Get: a refresh of the result page never posts the form again."""
    form = await checked_form(request, view.signed_in)
    draft = Draft()
    try:
        draft = await read_draft(form, view.signed_in.tenant.default_region)
        submitted = await pages.submit(ctx, view.signed_in.tenant, draft)
    except AppError as exc:
        return await _new_form(
            ctx,
            view,
            _draft_read_so_far(exc, draft),
            status_code=exc.http_status,
            problem=describe(exc, view.t),
            new_key=isinstance(exc, IdempotencyKeyMismatch),
        )
    return see_other(
        url(
            f"/broadcasts/{submitted.broadcast_id}",
            created="true",
            replayed="true" if submitted.replayed else None,
        )
    )


# --- one broadcast -------------------------------------------------------------


async def _broadcast_view(
    ctx: Ctx,
    view: PageView,
    broadcast_id: int,
    *,
    status: RecipientStatus | None = None,
    cursor: str | None = None,
    created: bool = False,
    replayed: bool = False,
    notice: str | None = None,
    unconfirmed: str | None = None,
    status_code: int = 200,
) -> Response:
    page = await pages.broadcast_detail(
        ctx, view.signed_in.tenant, broadcast_id, status=status, cursor=cursor
    )
    return view.render(
        "broadcast.html",
        status_code=status_code,
        live_template="broadcast_live.html",
        page=page,
        b=page.broadcast,
        connection=page.connection,
        account_hold=page.account_hold,
        now=ctx.clock.now(),
        status_filter=status.value if status else "",
        cursor=cursor or "",
        created=created,
        replayed=replayed,
        notice=notice,
        unconfirmed=unconfirmed,
        live_page=True,
        # Shown at a control's address (a refused POST), it refreshes from its own.
        live_url=f"/broadcasts/{broadcast_id}" if unconfirmed else "",
        nav="overview",
    )


@router.get("/broadcasts/{broadcast_id}")
async def broadcast_page(
    broadcast_id: BroadcastId,
    ctx: Ctx,
    view: SignedInView,
    status: RecipientStatus | None = None,
    cursor: Cursor = None,
    created: bool = False,
    replayed: bool = False,
    notice: str | None = None,
    requeued: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    shown = view.t(NOTICES[notice]) if notice in NOTICES else None
    if notice == "requeued" and requeued is not None:
        shown = view.t.plural("control.retry.done", requeued)
    return await _broadcast_view(
        ctx,
        view,
        broadcast_id,
        status=status,
        cursor=cursor,
        created=created,
        replayed=replayed,
        notice=shown,
    )


async def _confirmed_control(
    request: Request, ctx: Ctx, view: PageView, broadcast_id: int, control: str
) -> FormData | Response:
    """The control's form if its box was ticked; else the page again, asking for the tick."""
    form = await checked_form(request, view.signed_in)
    if form.get("confirm") == "yes":
        return form
    unconfirmed = view.t(UNCONFIRMED[control], id=broadcast_id)
    return await _broadcast_view(ctx, view, broadcast_id, unconfirmed=unconfirmed, status_code=400)


@router.get("/broadcasts/{broadcast_id}/pause")
@router.get("/broadcasts/{broadcast_id}/resume")
@router.get("/broadcasts/{broadcast_id}/retry-failed")
async def control_address(broadcast_id: BroadcastId) -> Response:
    """The address a refused control was posted to (the language switch, a reload)."""
    return see_other(f"/broadcasts/{broadcast_id}")


@router.post("/broadcasts/{broadcast_id}/cancel")
async def cancel_broadcast(
    broadcast_id: BroadcastId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    await checked_form(request, view.signed_in)
    try:
        await pages.cancel(ctx, view.signed_in.tenant, broadcast_id)
    except BroadcastFinished:
        return see_other(url(f"/broadcasts/{broadcast_id}", notice="already_finished"))
    return see_other(url(f"/broadcasts/{broadcast_id}", notice="cancelled"))


@router.post("/broadcasts/{broadcast_id}/pause")
async def pause_broadcast(
    broadcast_id: BroadcastId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    """Stop starting sends (those already handed over finish); confirmed by a tick."""
    form = await _confirmed_control(request, ctx, view, broadcast_id, "pause")
    if isinstance(form, Response):
        return form
    try:
        await pages.pause(ctx, view.signed_in.tenant, broadcast_id)
    except BroadcastFinished:
        return see_other(url(f"/broadcasts/{broadcast_id}", notice="finished_before_pause"))
    return see_other(url(f"/broadcasts/{broadcast_id}", notice="paused"))


@router.post("/broadcasts/{broadcast_id}/resume")
async def resume_broadcast(
    broadcast_id: BroadcastId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    form = await _confirmed_control(request, ctx, view, broadcast_id, "resume")
    if isinstance(form, Response):
        return form
    try:
        await pages.resume(ctx, view.signed_in.tenant, broadcast_id)
    except BroadcastFinished:
        return see_other(url(f"/broadcasts/{broadcast_id}", notice="finished_before_resume"))
    return see_other(url(f"/broadcasts/{broadcast_id}", notice="resumed"))


@router.post("/broadcasts/{broadcast_id}/retry-failed")
async def retry_failed(
    broadcast_id: BroadcastId, request: Request, ctx: Ctx, view: SignedInView
) -> Response:
    """Queue failed recipients again (all that may pass, or those of one code)."""
    form = await _confirmed_control(request, ctx, view, broadcast_id, "retry-failed")
    if isinstance(form, Response):
        return form
    chosen = form.get("error_code")
    code = chosen.strip()[:64] if isinstance(chosen, str) and chosen.strip() else None
    try:
        requeued = await pages.retry_failed(ctx, view.signed_in.tenant, broadcast_id, code)
    except BroadcastFinished:
        return see_other(url(f"/broadcasts/{broadcast_id}", notice="finished_before_retry"))
    return see_other(url(f"/broadcasts/{broadcast_id}", notice="requeued", requeued=requeued))


@router.get("/broadcasts/{broadcast_id}/failed.csv")
async def failed_recipients_csv(
    broadcast_id: BroadcastId, ctx: Ctx, view: SignedInView
) -> Response:
    lines = await pages.failed_recipients_csv(ctx, view.signed_in.tenant, broadcast_id)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="broadcast-{broadcast_id}-failed.csv"',
            "Cache-Control": "no-store",
        },
    )


# The Sessions, Opt-outs and Webhooks pages have modules of their own.
router.include_router(session_routes.router)
router.include_router(settings_routes.router)
router.include_router(opt_out_routes.router)
router.include_router(webhook_routes.router)
