"""GET /healthz and GET /readyz: up, reachable, and at the migration head, or a clear 503."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.databases import create_pg_database, drop_pg_database, pg_url
from wabroadcast import __version__
from wabroadcast.api.app import build_context, create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings
from wabroadcast.db import migrate
from wabroadcast.health import service as health


@asynccontextmanager
async def _client_for(url: str, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on ``url``, which may be unreachable or not migrated."""
    context = build_context(Settings(database_url=url), clock=clock)
    transport = httpx.ASGITransport(app=create_app(context), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await context.database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend, for migrating to chosen revisions."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    request.getfixturevalue("pg_database")  # skips or fails when PostgreSQL is unreachable
    name = create_pg_database("wab_health")
    yield pg_url(name)
    drop_pg_database(name)


async def test_healthz_answers_without_asking_the_database(clock: FrozenClock) -> None:
    # Nothing listens on port 1: any database call would fail.
    async with _client_for("postgresql+psycopg://postgres@127.0.0.1:1/none", clock) as client:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "version": __version__}
        assert (await client.get("/readyz")).status_code == 503


async def test_readyz_is_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "revision": migrate.head_revision(),
    }


async def test_readyz_is_503_when_the_database_is_unreachable(clock: FrozenClock) -> None:
    async with _client_for("postgresql+psycopg://postgres@127.0.0.1:1/none", clock) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["success"] is False
        assert body["error_code"] == "NOT_READY"
        assert body["message"] == "The database is unreachable"
        assert body["details"]["database"] == "unreachable"


async def test_readyz_is_503_when_the_database_does_not_answer_in_time(
    clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts the connection and then says nothing (a hung database)."""
    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        async with _client_for(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/x", clock
        ) as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "success": False,
        "error_code": "NOT_READY",
        "message": "The database did not answer within 0.3 s",
        "details": {"database": "timeout"},
    }


@pytest.mark.parametrize(("revision", "applied"), [(None, []), ("0002", ["0002"])])
async def test_readyz_is_503_until_the_schema_is_at_the_head(
    fresh_database_url: str, clock: FrozenClock, revision: str | None, applied: list[str]
) -> None:
    if revision is not None:
        migrate.upgrade(fresh_database_url, revision)
    async with _client_for(fresh_database_url, clock) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "success": False,
            "error_code": "NOT_READY",
            "message": (
                "The database schema is not at the revision this version needs "
                "(if it is behind: `wabroadcast db upgrade`)"
            ),
            "details": {"database": "ok", "revision": applied, "head": migrate.head_revision()},
        }
        migrate.upgrade(fresh_database_url)
        assert (await client.get("/readyz")).status_code == 200


async def test_probes_need_no_api_key_and_refuse_other_methods(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    refused = await client.post("/readyz")
    assert refused.status_code == 405
    assert refused.json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert refused.headers["allow"] == "GET"
