"""Turning page data into HTML: templates, static files, headers, and friendly errors.

Every dashboard route uses ``DashboardRoute``, so an error a service raises
becomes a page in the visitor's language (never the API's JSON envelope), an
expired session becomes a redirect to sign in, and every answer carries the
same security headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined
from phonenumbers import NumberParseException, PhoneNumberFormat, format_number, parse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from wabroadcast import __version__
from wabroadcast.broadcasts.control import PAUSED_BY_OPERATOR
from wabroadcast.broadcasts.schemas import BroadcastOut
from wabroadcast.domain.errors import AppError
from wabroadcast.domain.replies import reply_rate
from wabroadcast.domain.status import (
    FINAL_BROADCAST_STATUSES,
    BroadcastStatus,
    RecipientStatus,
)
from wabroadcast.observability.logging import get_logger
from wabroadcast.texts import Translator
from wabroadcast.web.i18n import language_of
from wabroadcast.web.sessions import Visitor

log = get_logger("wabroadcast.web")

LIVE_HEADER = "X-Live-Refresh"
FRAGMENT_HEADER = "X-Fragment"
LIVE_REFRESH_MS = 3000

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

_STATIC_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str


def _load_static() -> dict[str, StaticFile]:
    folder = resources.files("wabroadcast.web") / "static"
    files: dict[str, StaticFile] = {}
    for name, media_type in _STATIC_TYPES.items():
        body = (folder / name).read_bytes()
        files[name] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return files


STATIC_FILES = _load_static()


def static_url(name: str) -> str:
    """A URL that changes whenever the file does, so browsers may cache it for good."""
    return f"/static/{name}?v={STATIC_FILES[name].version}"


def static_response(name: str, version: str | None) -> Response:
    found = STATIC_FILES.get(name)
    if found is None:
        raise HTTPException(404, "no such file")
    cache = "public, max-age=31536000, immutable" if version == found.version else "no-cache"
    return Response(found.body, media_type=found.media_type, headers={"Cache-Control": cache})


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``: sign-in never redirects away."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def url(path: str, **params: object) -> str:
    """``path`` with the given query parameters, leaving out empty ones."""
    given = {key: str(value) for key, value in params.items() if value not in (None, "")}
    return f"{path}?{urlencode(given)}" if given else path


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def compact_utc(moment: datetime, now: datetime | None, previous: datetime | None = None) -> str:
    """A time to read in a column of times: the date only when it is not today's (UTC) and
    not the date of the time shown just before it; dashboard.js does the same in local time."""
    at = moment.astimezone(UTC)
    same_day = [m.astimezone(UTC).date() for m in (now, previous) if m is not None]
    if at.date() in same_day:
        return at.strftime("%H:%M:%S UTC")
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


@lru_cache(maxsize=4096)
def international(phone: str) -> str:
    """A stored (E.164) phone as people write it: ``+972 50-234-5678``; as given if unparsable."""
    try:
        return str(format_number(parse(phone, None), PhoneNumberFormat.INTERNATIONAL))
    except NumberParseException:
        return phone


def number(value: int) -> str:
    return f"{value:,}"


def plain_number(value: float) -> str:
    """A number as a person types it: ``3600.0`` → ``3600``, ``0.5`` → ``0.5``."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def amount(value: float) -> str:
    """A number to read: ``3600.0`` → ``3,600``, ``0.5`` → ``0.5``."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return plain_number(value)


@dataclass(frozen=True, slots=True)
class Progress:
    """A broadcast's progress bar: widths in percent of its recipients.

    ``done`` counts recipients that were really tried (sent or failed); cancelled ones
    are shown apart, so a broadcast cancelled before sending reads "0/3 · 3 cancelled"
    rather than as complete.
    """

    total: int
    done: int
    cancelled_count: int
    percent: int
    sent: float
    failed: float
    cancelled: float


def progress_of(broadcast: BroadcastOut) -> Progress:
    total = broadcast.total_recipients
    done = broadcast.sent_count + broadcast.failed_count

    def share(count: int) -> float:
        return round(100 * count / total, 3) if total else 0.0

    return Progress(
        total=total,
        done=done,
        cancelled_count=broadcast.cancelled_count,
        percent=int(100 * done // total) if total else 0,
        sent=share(broadcast.sent_count),
        failed=share(broadcast.failed_count),
        cancelled=share(broadcast.cancelled_count),
    )


def isolated(text: str) -> str:
    """``text`` as a left-to-right island (a token's tail, ``…1234``) inside a sentence of
    either direction: Unicode's isolate marks, since a translated text holds no markup."""
    return f"\u2066{text}\u2069"


_ISOLATES = {"ltr": "\u2066", "rtl": "\u2067", None: "\u2068"}


def bidi(value: object, direction: str | None = None) -> str:
    """``value`` as an island inside a translated sentence, laid out in ``direction``
    (``rtl``/``ltr``; None: its own first strong character's), so its full stop stays at
    its end: a Hebrew reason that starts with "WhatsApp" is still a right-to-left one."""
    return f"{_ISOLATES.get(direction, _ISOLATES[None])}{value}\u2069"


def paused_by_hand(status_reason: str | None) -> bool:
    """Whether an operator paused the broadcast (not WhatsApp refusing the account)."""
    return status_reason == PAUSED_BY_OPERATOR


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("wabroadcast.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        iso=iso,
        utc=utc_text,
        compact_utc=compact_utc,
        number=number,
        amount=amount,
        plain=plain_number,
        isolated=isolated,
        bidi=bidi,
        phone=international,
    )
    env.globals.update(
        static_url=static_url,
        url=url,
        progress_of=progress_of,
        reply_rate=reply_rate,
        paused_by_hand=paused_by_hand,
        broadcast_statuses=[s.value for s in BroadcastStatus],
        recipient_statuses=[s.value for s in RecipientStatus],
        final_statuses={s.value for s in FINAL_BROADCAST_STATUSES},
        version=__version__,
        live_refresh_ms=LIVE_REFRESH_MS,
    )
    return env


TEMPLATES = _environment()


class PageView:
    """One request's rendering: its language, its visitor, and whether only live parts are due."""

    def __init__(self, request: Request, visitor: Visitor | None) -> None:
        self.request = request
        self.visitor = visitor
        self.t = Translator(language_of(request))

    @property
    def signed_in(self) -> Visitor:
        """The visitor of a page that needs one (the route's dependency has made sure)."""
        if self.visitor is None:
            raise SignInRequired
        return self.visitor

    @property
    def live(self) -> bool:
        """A live-refresh poll: render only the parts of the page that change."""
        return self.request.headers.get(LIVE_HEADER) == "1"

    @property
    def fragment(self) -> bool:
        """A script asked for one piece of a page (a preview), not a whole page."""
        return self.request.headers.get(FRAGMENT_HEADER) == "1"

    def render(
        self,
        template: str,
        *,
        status_code: int = 200,
        live_template: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        name = live_template if live_template is not None and self.live else template
        path = self.request.url.path
        if self.request.url.query:
            path += "?" + self.request.url.query
        html = TEMPLATES.get_template(name).render(
            t=self.t,
            lang=self.t.language,
            dir=self.t.direction,
            visitor=self.visitor,
            csrf_token=self.visitor.csrf_token if self.visitor else "",
            here=quote(path, safe="/?=&"),
            **{
                "connection": None,
                "account_hold": None,
                "now": None,
                "live_page": False,
                "live_url": "",
                "nav": "",
                **context,
            },
        )
        return HTMLResponse(
            html,
            status_code=status_code,
            headers={"Cache-Control": "no-store", "Vary": "Cookie, Accept-Language"},
        )


class SignInRequired(Exception):
    """No valid dashboard session: the visitor has to sign in (again)."""


class CsrfRefused(Exception):
    """A form without this session's CSRF token: possibly sent by another site."""


def _error_page(request: Request, status_code: int, text_key: str, message: str) -> Response:
    view = PageView(request, None)
    text = view.t(text_key, message=message)
    if view.fragment or view.live:
        return view.render("_error_box.html", status_code=status_code, text=text)
    return view.render("error.html", status_code=status_code, text=text)


def _error_key(status_code: int) -> str:
    return (
        f"errorpage.{status_code}"
        if status_code in {400, 403, 404, 409, 422}
        else ("errorpage.other")
    )


class DashboardRoute(APIRoute):
    """A route whose failures are pages for people, and whose answers carry security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                response = _to_sign_in(request)
            except CsrfRefused:
                response = _error_page(request, 403, "errorpage.403", "")
            except AppError as exc:
                response = _error_page(
                    request, exc.http_status, _error_key(exc.http_status), exc.message
                )
            except RequestValidationError as exc:
                errors = exc.errors()
                first = errors[0] if errors else {}
                field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
                response = _error_page(request, 422, "errorpage.422", field or "?")
            except HTTPException as exc:
                response = _error_page(
                    request, exc.status_code, _error_key(exc.status_code), str(exc.detail)
                )
            except Exception as exc:
                # Like the API's handler: logged with its traceback, nothing revealed.
                log.exception("dashboard page failed", path=request.url.path, error=repr(exc))
                response = _error_page(request, 500, "errorpage.500", "")
            finally:
                # Uploaded files are spooled to temporary files; let them go now.
                await request.close()
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route


def _to_sign_in(request: Request) -> Response:
    if request.headers.get(LIVE_HEADER) == "1" or request.headers.get(FRAGMENT_HEADER) == "1":
        # A script is asking; it reloads the page, which then redirects.
        return Response(status_code=401, headers={"Cache-Control": "no-store"})
    here = request.url.path + ("?" + request.url.query if request.url.query else "")
    target = url("/sign-in", next=here) if request.method == "GET" and here != "/" else "/sign-in"
    return RedirectResponse(target, status_code=303)


def see_other(target: str) -> RedirectResponse:
    """The answer to a form that worked: go to ``target`` (Post/Redirect/Get)."""
    return RedirectResponse(target, status_code=303)
