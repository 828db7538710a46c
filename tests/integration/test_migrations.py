"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import create_pg_database, drop_pg_database, pg_url
from wabroadcast.db import migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    request.getfixturevalue("pg_database")  # skips or fails when PostgreSQL is unreachable
    name = create_pg_database("wab_migrate")
    yield pg_url(name)
    drop_pg_database(name)


def test_upgrade_head_then_check_finds_no_drift(empty_database_url: str) -> None:
    assert migrate.current_revision(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    migrate.check(empty_database_url)
    migrate.upgrade(empty_database_url)  # a second upgrade is a no-op
