"""An unreachable database is a 503 ``DATABASE_UNAVAILABLE`` with ``Retry-After``, not a 500.

A query that is wrong (a missing table) stays a 500: only connection failures
are an outage.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy.exc

from wabroadcast.api.app import build_context, create_app
from wabroadcast.api.errors import database_unavailable
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings

BROADCASTS = "/api/whatsapp/broadcasts"


async def answer(url: str, clock: FrozenClock) -> httpx.Response:
    context = build_context(Settings(database_url=url), clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(BROADCASTS, headers={"Authorization": "Bearer any-key"})
    finally:
        await context.providers.aclose()
        await context.database.dispose()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error_code"] == "DATABASE_UNAVAILABLE"
    assert body["details"] == {"retry_after_seconds": 5}
    assert response.headers["Retry-After"] == "5"


async def test_postgresql_not_listening(clock: FrozenClock) -> None:
    assert_unavailable(await answer("postgresql+psycopg://postgres@127.0.0.1:1/none", clock))


async def test_sqlite_in_a_missing_directory(clock: FrozenClock, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
    assert_unavailable(await answer(url, clock))


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


async def test_a_missing_table_is_still_a_500(clock: FrozenClock, empty_sqlite: str) -> None:
    context = build_context(Settings(database_url=empty_sqlite), clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(context), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get(BROADCASTS, headers={"Authorization": "Bearer any-key"})
    finally:
        await context.providers.aclose()
        await context.database.dispose()
    assert response.status_code == 500, response.text
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "Retry-After" not in response.headers


def _wrapped(orig: BaseException, kind: type[sqlalchemy.exc.DBAPIError]) -> BaseException:
    return kind("SELECT 1", {}, orig)


def test_only_connection_failures_count() -> None:
    refused = psycopg.OperationalError("connection refused")
    assert database_unavailable(_wrapped(refused, sqlalchemy.exc.OperationalError))
    assert database_unavailable(refused)
    assert database_unavailable(sqlalchemy.exc.TimeoutError("pool timed out"))
    cannot_open = sqlite3.OperationalError("unable to open database file")
    cannot_open.sqlite_errorcode = 14  # SQLITE_CANTOPEN
    assert database_unavailable(_wrapped(cannot_open, sqlalchemy.exc.OperationalError))
    no_table = sqlite3.OperationalError("no such table: x")
    no_table.sqlite_errorcode = 1  # SQLITE_ERROR
    assert not database_unavailable(_wrapped(no_table, sqlalchemy.exc.OperationalError))
    bad_sql = psycopg.errors.UndefinedTable("relation x does not exist")
    assert not database_unavailable(_wrapped(bad_sql, sqlalchemy.exc.ProgrammingError))
    assert not database_unavailable(
        _wrapped(psycopg.errors.UniqueViolation("dup"), sqlalchemy.exc.IntegrityError)
    )
    assert not database_unavailable(OSError("a file elsewhere"))
    assert not database_unavailable(ValueError("a bug"))
