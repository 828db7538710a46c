"""Who is at the dashboard: the session cookie, and the CSRF token every form must carry.

Two layers keep other sites from posting forms in a signed-in visitor's name:
the session cookie is SameSite=Strict (a cross-site request does not carry
it), and every POST must echo the session's CSRF token, which another site
cannot read. The sign-in form, before any session exists, uses a short-lived
double-submit cookie for the same purpose.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from wabroadcast.api.deps import Ctx
from wabroadcast.web import sessions
from wabroadcast.web.forms import MAX_FIELD_BYTES
from wabroadcast.web.rendering import CsrfRefused, PageView, SignInRequired
from wabroadcast.web.sessions import Visitor

SESSION_COOKIE = "wab_session"
SIGNIN_COOKIE = "wab_signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SIGNIN_FORM_TTL_S = 3600


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, new: sessions.NewSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=int(sessions.SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def set_signin_cookie(response: Response, request: Request, token: str) -> None:
    """The sign-in form's token, as the cookie its POST must match."""
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=SIGNIN_FORM_TTL_S,
        path="/sign-in",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def signin_token_matches(request: Request, form: FormData) -> bool:
    given = form.get(CSRF_FIELD)
    expected = request.cookies.get(SIGNIN_COOKIE)
    return bool(expected) and sessions.same_token(
        str(expected), given if isinstance(given, str) else None
    )


async def current_visitor(request: Request, ctx: Ctx) -> Visitor:
    token = request.cookies.get(SESSION_COOKIE)
    visitor = await sessions.visitor_for(ctx, token) if token else None
    if visitor is None:
        raise SignInRequired
    return visitor


SignedIn = Annotated[Visitor, Depends(current_visitor)]


def signed_in_view(request: Request, visitor: SignedIn) -> PageView:
    return PageView(request, visitor)


def anonymous_view(request: Request) -> PageView:
    return PageView(request, None)


SignedInView = Annotated[PageView, Depends(signed_in_view)]
AnonymousView = Annotated[PageView, Depends(anonymous_view)]


async def checked_form(request: Request, visitor: Visitor) -> FormData:
    """The POSTed form, refused unless it carries this session's CSRF token."""
    form = await request.form(max_part_size=MAX_FIELD_BYTES)
    given = form.get(CSRF_FIELD)
    token = given if isinstance(given, str) else request.headers.get(CSRF_HEADER)
    if not sessions.same_token(visitor.csrf_token, token):
        raise CsrfRefused
    return form
