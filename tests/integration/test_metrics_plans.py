"""On PostgreSQL the metrics queries use their indexes, never a scan of the recipients.

The statements checked are the ones the repository really sends (captured as
they execute), explained with their real parameters over enough rows, after
ANALYZE, that a sequential scan would be the planner's choice without an index.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from tests.support.tenants import START, TenantFixture, make_tenant
from wabroadcast.context import AppContext
from wabroadcast.metrics.repository import MetricsRepository

RECIPIENTS_PER_TENANT = 30_000
BROADCASTS_PER_TENANT = 400


def _load(dsn: str, tenant: TenantFixture) -> None:
    """Broadcasts (a few active) and recipients with events spread over the last two hours."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO whatsapp_broadcasts (tenant_id, session_id, status, message,
                connection_check, total_recipients, invalid_recipients_count,
                duplicates_removed, invalid_recipients, queued_count, sending_count,
                sent_count, delivered_count, read_count, failed_count, cancelled_count,
                created_at, updated_at)
            SELECT %(tenant)s, %(session)s,
                   CASE WHEN g %% 100 = 0 THEN 'running' ELSE 'completed' END,
                   'plan', 'connected', 75, 0, 0, '[]', 0, 0, 75, 0, 0, 0, 0,
                   %(start)s - g * interval '1 minute', %(start)s
            FROM generate_series(1, %(broadcasts)s) AS g
            """,
            {
                "tenant": tenant.tenant_id,
                "session": tenant.session_id,
                "start": START,
                "broadcasts": BROADCASTS_PER_TENANT,
            },
        )
        conn.execute(
            """
            INSERT INTO whatsapp_broadcast_recipients (broadcast_id, tenant_id, session_id,
                raw_input, phone, status, attempts, queued_at, updated_at,
                sent_at, delivered_at, failed_at)
            SELECT %(tenant)s * 10000 + g %% 1000, %(tenant)s, %(session)s, 'x',
                   '+9725' || lpad(g::text, 8, '0'),
                   'delivered', 1, %(start)s - interval '3 hours', %(start)s,
                   CASE WHEN g %% 4 <> 0 THEN %(start)s - (g %% 7200) * interval '1 second' END,
                   CASE WHEN g %% 4 = 1 THEN %(start)s - (g %% 7000) * interval '1 second' END,
                   CASE WHEN g %% 10 = 0 THEN %(start)s - (g %% 7100) * interval '1 second' END
            FROM generate_series(1, %(recipients)s) AS g
            """,
            {
                "tenant": tenant.tenant_id,
                "session": tenant.session_id,
                "start": START,
                "recipients": RECIPIENTS_PER_TENANT,
            },
        )


def _walk(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _walk(child)


async def _explained(ctx: AppContext, call: Any) -> list[dict[str, Any]]:
    """Run ``call(repository)``, then EXPLAIN every statement it sent; the plan nodes."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    engine = ctx.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with ctx.database.transaction() as db:
            await call(MetricsRepository(db))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert sent, "the repository sent no statement"
    nodes: list[dict[str, Any]] = []
    async with ctx.database.transaction() as db:
        connection = await db.connection()
        for statement, parameters in sent:
            result = await connection.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) " + statement, parameters
            )
            nodes += _walk(result.scalar_one()[0]["Plan"])
    return nodes


@pytest.fixture
async def loaded(ctx: AppContext, tenant: TenantFixture) -> TenantFixture:
    if ctx.database.is_sqlite:
        pytest.skip("query plans are checked on PostgreSQL")
    dsn = ctx.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    _load(dsn, tenant)
    _load(dsn, await make_tenant(ctx, "Neighbour"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE whatsapp_broadcast_recipients")
        conn.execute("VACUUM ANALYZE whatsapp_broadcasts")
    return tenant


def _index_names(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Index Name"] for node in nodes if "Index Name" in node}


def _seq_scanned(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"}


async def test_tenant_counts_use_the_event_indexes_and_the_broadcast_status_index(
    ctx: AppContext, loaded: TenantFixture
) -> None:
    async def call(repo: MetricsRepository) -> None:
        counts = await repo.tenant_counts(
            loaded.tenant_id, since=START - timedelta(minutes=5), until=START
        )
        assert counts.active_broadcasts == BROADCASTS_PER_TENANT // 100

    nodes = await _explained(ctx, call)
    assert _seq_scanned(nodes) == set()
    assert {
        "ix_whatsapp_broadcast_recipients_tenant_id_sent_at",
        "ix_whatsapp_broadcast_recipients_tenant_id_delivered_at",
        "ix_whatsapp_broadcast_recipients_tenant_id_failed_at",
        "ix_whatsapp_broadcasts_tenant_id_status_id",
    } <= _index_names(nodes)


async def test_sends_per_minute_uses_the_event_indexes(
    ctx: AppContext, loaded: TenantFixture
) -> None:
    async def call(repo: MetricsRepository) -> None:
        for kind in ("sent", "failed"):
            await repo.events_per_minute(
                loaded.tenant_id, kind, since=START - timedelta(minutes=59), until=START
            )

    nodes = await _explained(ctx, call)
    assert _seq_scanned(nodes) == set()
    assert {
        "ix_whatsapp_broadcast_recipients_tenant_id_sent_at",
        "ix_whatsapp_broadcast_recipients_tenant_id_failed_at",
    } <= _index_names(nodes)
