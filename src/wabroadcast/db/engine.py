"""Engines and transactions for SQLite (embedded default) and PostgreSQL.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that concurrent
writers (API and worker processes on one file) queue up instead of failing on a
lock upgrade; a write transaction there is the single-writer section the
design relies on. PostgreSQL gets a pool sized for one process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000

# The URL forms people type, and the async driver this service runs each with.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
URL_FORMS = "sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def async_url(url: str) -> str:
    """The URL as this service runs it: ``sqlite:///x`` means ``sqlite+aiosqlite:///x``,
    ``postgresql://…`` (or ``postgres://``, ``postgresql+psycopg2://``) means
    ``postgresql+psycopg://…``; the rest of the URL is kept as given.

    ``ValueError`` (naming the accepted forms, never the password) for anything else.
    """
    scheme, sep, rest = url.strip().partition("://")
    driver = _ASYNC_DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        what = f"{scheme[:40]!r} is not a supported database" if sep else "not a database URL"
        raise ValueError(f"{what}; use {URL_FORMS}")
    normalized = f"{driver}://{rest}"
    try:
        make_url(normalized)
    except ArgumentError:
        raise ValueError(f"not a database URL; use {URL_FORMS}") from None
    return normalized


def display_url(url: str) -> str:
    """The URL to show a person: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.partition("://")[0] + "://…"


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite), for dialect-specific SQL."""
    return session.get_bind().dialect.name == "postgresql"


def create_engine_for(url: str, *, pool_size: int = 10, wait_for_flush: bool = True) -> AsyncEngine:
    """An async engine configured for the backend the URL names.

    ``wait_for_flush=False`` (PostgreSQL only): a commit returns before its WAL
    is flushed to disk (``synchronous_commit = off``). What it wrote is visible
    and survives the death of this process, but not a crash of the server itself.
    """
    if is_sqlite_url(url):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    connect_args = {} if wait_for_flush else {"options": "-c synchronous_commit=off"}
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine plus a session factory; ``transaction()`` is the one way to write."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine_for(url, pool_size=pool_size)
        self.is_sqlite = is_sqlite_url(url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._lanes: dict[str, tuple[AsyncEngine, async_sessionmaker[AsyncSession]]] = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def control_transaction(
        self, lane: str = "control", *, wait_for_flush: bool = True
    ) -> AsyncIterator[AsyncSession]:
        """A transaction on a connection of its own (one per ``lane``), never queued
        behind the main pool.

        For the few writes that must happen on time whatever else the process is
        doing: thousands of send slots may be waiting for the main pool's
        connections. Lease renewals use the "control" lane; the simulated
        WhatsApp's send log, which stands for another system, has its own
        (without ``wait_for_flush``, see ``create_engine_for``). A lane keeps the
        setting of its first use.
        """
        if lane not in self._lanes:
            engine = create_engine_for(self.url, pool_size=1, wait_for_flush=wait_for_flush)
            self._lanes[lane] = (
                engine,
                async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
            )
        async with self._lanes[lane][1]() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        for engine, _ in self._lanes.values():
            await engine.dispose()
