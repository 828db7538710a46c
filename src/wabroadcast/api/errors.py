"""The one place errors become HTTP responses, always in the same envelope.

What the client caused is a 4xx with a stable ``error_code``; a database that
cannot be reached is a 503 ``DATABASE_UNAVAILABLE`` with ``Retry-After``; anything
else is a 500 ``INTERNAL_ERROR`` that is logged with its traceback and reveals nothing.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from wabroadcast.domain.errors import (
    AppError,
    DatabaseUnavailable,
    InternalError,
    MethodNotAllowed,
    Unauthorized,
    ValidationFailed,
    for_http_status,
)
from wabroadcast.observability.logging import get_logger

log = get_logger("wabroadcast.api")

# PostgreSQL SQLSTATE classes that mean "the server is unreachable or shedding load"
# (connection exception, insufficient resources, system error), and the 57P codes
# of an administrator or crash shutdown. Anything else is the query's own fault.
_PG_UNAVAILABLE_CLASSES = ("08", "53", "58")
_PG_UNAVAILABLE_CODES = ("57P01", "57P02", "57P03", "57P04", "57P05")
# SQLite primary result codes for a file that cannot be opened, read or locked
# (SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN); a missing table or a
# syntax error is also an sqlite3.OperationalError, but not one of these.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 14})
# Modules whose frames an OSError must pass through to be the database's.
_DATABASE_MODULES = ("sqlalchemy", "psycopg", "aiosqlite", "sqlite3", "wabroadcast.db")


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


async def app_error_response(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return render(exc)


def render(exc: AppError) -> JSONResponse:
    """The envelope of a catalogued error, with the headers its code calls for."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
    retry_after = exc.retry_after()
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
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
        ValidationFailed.http_status,
        ValidationFailed.error_code,
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
            MethodNotAllowed.error_code,
            "Method Not Allowed",
            headers={"Allow": _allowed_methods(request)},
        )
    if exc.status_code == 400:
        # FastAPI's own answer to a body it could not decode (bad encoding,
        # truncated JSON): a validation error like any other malformed input.
        return envelope(
            ValidationFailed.http_status,
            ValidationFailed.error_code,
            f"body: {exc.detail}",
            {"errors": [{"field": "body", "message": str(exc.detail), "type": "body_decode"}]},
        )
    known = for_http_status(exc.status_code)
    code = "HTTP_ERROR" if known is None else known.error_code
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    return envelope(exc.status_code, code, message, headers=getattr(exc, "headers", None))


def _raised_by_database(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


def _driver_unavailable(error: BaseException | None) -> bool:
    """Whether a DB-API (driver) error means the database cannot be reached."""
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        state = error.sqlstate
        return (
            state is None or state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE_CODES
        )
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _SQLITE_UNAVAILABLE
    return isinstance(error, OSError)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable, not that a query was wrong.

    Only connection failures count: a missing table, a constraint violation or
    bad SQL stays a 500, so a bug is never disguised as an outage.
    """
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return _driver_unavailable(exc.orig)
        return False
    if isinstance(exc, psycopg.Error):
        return _driver_unavailable(exc)
    if isinstance(exc, OSError):
        # A refused or timed-out connect that no driver wrapped: only when it
        # came from the database layer, not from any other file or socket.
        return _raised_by_database(exc.__traceback__)
    return False


def _database_unavailable_response() -> JSONResponse:
    return render(
        DatabaseUnavailable(
            "The database is unavailable; retry shortly.",
            details={"retry_after_seconds": DatabaseUnavailable.retry_after_s},
        )
    )


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    """503 for an unreachable database; anything else goes on to the 500 handler."""
    if not database_unavailable(exc):
        raise exc
    log.warning("database unavailable", error=repr(exc))
    return _database_unavailable_response()


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):  # raised outside the routes (e.g. by a middleware)
        log.warning("database unavailable", error=repr(exc))
        return _database_unavailable_response()
    log.exception("unhandled error", error=repr(exc))
    return envelope(InternalError.http_status, InternalError.error_code, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_response)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, psycopg.Error, OSError):
        app.add_exception_handler(kind, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
