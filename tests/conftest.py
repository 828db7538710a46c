"""Fixtures shared by every test: databases on both backends, a frozen clock, an API client.

Each test gets its own data: a fresh copy of a migrated SQLite file, or a
PostgreSQL database emptied with TRUNCATE. PostgreSQL tests skip when no server
is reachable, except under CI=true, where they fail loudly instead.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.support.databases import (
    IN_CI,
    create_pg_database,
    drop_pg_database,
    pg_unreachable,
    pg_url,
    truncate_all,
)
from tests.support.tenants import START, TEST_SECRET_KEY, TenantFixture, make_tenant
from wabroadcast.api.app import build_context, create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.db import migrate


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run; tests empty it before use."""
    problem = pg_unreachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = create_pg_database()
    migrate.upgrade(pg_url(name))
    yield name
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    name: str = request.getfixturevalue("pg_database")
    truncate_all(name)
    return pg_url(name)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=SecretStr(TEST_SECRET_KEY))


@pytest.fixture
async def ctx(settings: Settings, clock: FrozenClock) -> AsyncIterator[AppContext]:
    context = build_context(settings, clock=clock)
    yield context
    await context.providers.aclose()
    await context.database.dispose()


@pytest.fixture
async def client(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def tenant(ctx: AppContext) -> TenantFixture:
    return await make_tenant(ctx)
