"""One catalogue of error codes: the envelope, OpenAPI and the README's table all come from it."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import wabroadcast
from wabroadcast.api.app import create_app
from wabroadcast.api.error_table import markdown
from wabroadcast.api.errors import app_error_response
from wabroadcast.domain.errors import (
    CATALOGUE,
    AppError,
    BroadcastFinished,
    DatabaseUnavailable,
    IdempotencyKeyInUse,
    RateLimited,
    SessionInUse,
)

README = Path(__file__).resolve().parents[2] / "README.md"
# Errors only the dashboard shows (as a sentence on the form), never the JSON API.
DASHBOARD_ONLY = {"FORM_INVALID"}


def _every_error_class() -> set[type[AppError]]:
    for module in pkgutil.walk_packages(wabroadcast.__path__, "wabroadcast."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[AppError]] = set()
    todo = [AppError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return found


def test_codes_are_unique_and_every_error_is_catalogued() -> None:
    codes = [e.error_code for e in CATALOGUE]
    assert len(codes) == len(set(codes))
    catalogued = set(codes)
    stray = {
        cls.__qualname__: cls.error_code
        for cls in _every_error_class()
        if cls.error_code not in catalogued and cls.error_code not in DASHBOARD_ONLY
    }
    assert stray == {}, "add these to domain.errors.CATALOGUE"


def test_every_catalogued_error_says_when_a_client_gets_it() -> None:
    for error in CATALOGUE:
        assert (error.when and error.when != AppError.when) or error.error_code == "INTERNAL_ERROR"
        assert 400 <= error.http_status < 600


def test_the_readme_error_table_is_the_catalogue() -> None:
    table = markdown()
    assert table in README.read_text(encoding="utf-8"), (
        "README's error table is out of date; paste `python -m wabroadcast.api.error_table`"
    )


def test_openapi_error_descriptions_come_from_the_catalogue() -> None:
    whens = {e.error_code: e.when for e in CATALOGUE}
    schema = create_app().openapi()
    seen = 0
    for path in schema["paths"].values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if not status.isdigit() or int(status) < 400:
                    continue
                for part in response["description"].split("; "):
                    code, _, _ = part.partition(": ")
                    if code in whens:
                        seen += 1
                        assert part.startswith(f"{code}: ")
                        assert whens[code].startswith(part[len(code) + 2 :].split("; ")[0])
    assert seen > 20


async def test_retry_after_only_where_waiting_helps() -> None:
    async def headers_of(error: AppError) -> dict[str, str]:
        return dict((await app_error_response(None, error)).headers)  # type: ignore[arg-type]

    assert "retry-after" not in await headers_of(BroadcastFinished("finished"))
    assert "retry-after" not in await headers_of(SessionInUse("in use"))
    assert (await headers_of(IdempotencyKeyInUse("busy")))["retry-after"] == "1"
    assert (await headers_of(RateLimited("slow down", retry_after_s=7)))["retry-after"] == "7"
    assert (await headers_of(DatabaseUnavailable("away")))["retry-after"] == "5"
