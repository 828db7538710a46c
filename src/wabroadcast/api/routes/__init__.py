"""HTTP routes; each handler parses, calls one service function and returns a schema."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from wabroadcast.api.schemas import ErrorEnvelope
from wabroadcast.domain.errors import (
    CATALOGUE,
    AppError,
    DatabaseUnavailable,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)


def error_responses(*errors: int | type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error envelopes a route can return, from the error catalogue.

    A status stands for every catalogued error with that status; an error class
    for itself alone.
    """
    by_status: dict[int, list[type[AppError]]] = defaultdict(list)
    for error in errors:
        if isinstance(error, int):
            by_status[error] += [e for e in CATALOGUE if e.http_status == error]
        else:
            by_status[error.http_status].append(error)
    return {
        status: {
            "model": ErrorEnvelope,
            "description": "; ".join(f"{e.error_code}: {e.when}" for e in listed),
            # Explicit, so a route that answers text/plain still documents its errors as JSON.
            "content": {"application/json": {}},
        }
        for status, listed in sorted(by_status.items())
    }


def tenant_errors(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """``error_responses`` of a route called with a tenant's API key: its own errors and
    those every such route can answer (bad key, rate limit, bad input, database away)."""
    return error_responses(
        Unauthorized, ValidationFailed, RateLimited, DatabaseUnavailable, *errors
    )
