"""Test databases on both backends: a PostgreSQL database per run (or per test), and
whether PostgreSQL is there at all (tests skip without it, except under CI=true)."""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg import sql

from wabroadcast.db.models import Base

PG_ADMIN_DSN = os.environ.get(
    "WABROADCAST_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pg_url(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be reached, or None when it can."""
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip() or repr(exc)


def create_pg_database(prefix: str = "wab_test") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def truncate_all(dbname: str) -> None:
    """Empty every table of a migrated test database (ids restart at 1)."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    dsn = pg_url(dbname).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(tables)))
