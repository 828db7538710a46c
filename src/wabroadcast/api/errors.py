"""The one place errors become HTTP responses, always in the same envelope.

What the client caused is a 4xx with a stable ``error_code``; anything else is
a 500 ``INTERNAL_ERROR`` that is logged with its traceback and reveals nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from wabroadcast.domain.errors import AppError, Unauthorized
from wabroadcast.observability.logging import get_logger

log = get_logger("wabroadcast.api")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
}


def envelope(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "success": False,
        "error_code": code,
        "message": message,
        "details": details or {},
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    if exc.http_status == 409:
        headers = {"Retry-After": "1"}
    return envelope(exc.http_status, exc.error_code, exc.message, exc.details, exc.extra, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors()[:50]:
        errors.append(
            {
                "field": _field_name(tuple(err.get("loc", ()))),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "value_error")),
            }
        )
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return envelope(
        422,
        "VALIDATION_ERROR",
        f"{first['field']}: {first['message']}",
        {"errors": errors, "error_count": len(exc.errors())},
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.state.routes:
        match, _ = route.matches({**request.scope, "method": "__ANY__"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return envelope(
            405,
            "METHOD_NOT_ALLOWED",
            "Method Not Allowed",
            headers={"Allow": _allowed_methods(request)},
        )
    if exc.status_code == 400:
        # FastAPI's own answer to a body it could not decode (bad encoding,
        # truncated JSON): a validation error like any other malformed input.
        return envelope(
            422,
            "VALIDATION_ERROR",
            f"body: {exc.detail}",
            {"errors": [{"field": "body", "message": str(exc.detail), "type": "body_decode"}]},
        )
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    return envelope(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", error=repr(exc))
    return envelope(500, "INTERNAL_ERROR", "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
