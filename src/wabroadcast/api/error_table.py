"""The README's error table, made from the error catalogue.

Regenerate it with ``python -m wabroadcast.api.error_table``.
"""

from __future__ import annotations

from wabroadcast.domain.errors import CATALOGUE, AppError


def _when(error: type[AppError]) -> str:
    if error.retry_after is not AppError.retry_after:
        return (
            f"{error.when}; with `Retry-After` in whole seconds "
            "(also `details.retry_after_seconds`)"
        )
    if error.retry_after_s is not None:
        return f"{error.when}; with `Retry-After: {error.retry_after_s}`"
    return error.when


def markdown() -> str:
    """One row per error code, by HTTP status."""
    rows = ["| status | error_code | when |", "|---|---|---|"]
    for error in sorted(CATALOGUE, key=lambda e: e.http_status):
        rows.append(f"| {error.http_status} | `{error.error_code}` | {_when(error)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
