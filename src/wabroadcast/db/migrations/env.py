"""Alembic environment: runs migrations on a synchronous engine for the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from wabroadcast.db.migrate import sync_url
from wabroadcast.db.models import Base
from wabroadcast.providers import registry  # noqa: F401  (loads every provider's tables)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL configured for migrations")
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
