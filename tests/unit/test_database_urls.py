"""Database URLs in the forms people type, as the async drivers' URLs (and back for Alembic)."""

from __future__ import annotations

import pytest

from wabroadcast.config import Settings
from wabroadcast.db.engine import async_url, display_url
from wabroadcast.db.migrate import sync_url


@pytest.mark.parametrize(
    ("typed", "runs_as"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////var/lib/wab/x.db", "sqlite+aiosqlite:////var/lib/wab/x.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p%40ss@db:5432/wab", "postgresql+psycopg://u:p%40ss@db:5432/wab"),
        ("postgres://u@db/wab", "postgresql+psycopg://u@db/wab"),
        (
            "postgresql+psycopg2://u@db/wab?sslmode=require",
            "postgresql+psycopg://u@db/wab?sslmode=require",
        ),
        ("postgresql+psycopg://u@db/wab", "postgresql+psycopg://u@db/wab"),
        ("  PostgreSQL://u@db/wab ", "postgresql+psycopg://u@db/wab"),
    ],
)
def test_every_typed_form_runs_on_the_async_driver(typed: str, runs_as: str) -> None:
    assert async_url(typed) == runs_as
    assert Settings(database_url=typed).database_url == runs_as


@pytest.mark.parametrize(
    ("typed", "sync"),
    [
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite:///x.db"),
        ("postgresql://u:secret@db/wab", "postgresql+psycopg://u:secret@db/wab"),
    ],
)
def test_migrations_get_the_synchronous_twin(typed: str, sync: str) -> None:
    assert sync_url(typed) == sync


@pytest.mark.parametrize(
    "typed", ["mysql://root:s3cret@db/wab", "s3cret", "", "oracle+cx://u:s3cret@db/x"]
)
def test_other_urls_are_refused_naming_the_forms_and_no_password(typed: str) -> None:
    with pytest.raises(ValueError, match=r"use sqlite:///FILE or postgresql://") as refused:
        async_url(typed)
    assert "s3cret" not in str(refused.value)


def test_a_url_is_shown_without_its_password() -> None:
    shown = display_url("postgresql+psycopg://wab:s3cret@db:5432/wab")
    assert shown == "postgresql+psycopg://wab:***@db:5432/wab"
