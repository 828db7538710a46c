"""metrics_p99_ms: GET /api/whatsapp/metrics, uncached, over 1,000,000 recipient rows.

PostgreSQL only. A scratch database is migrated and seeded with SQL
(``INSERT ... SELECT generate_series``): the measured tenant has 200
broadcasts of 5,000 recipients (1,000,000 rows; the 5 newest still running,
queued or paused with part of their recipients queued or sending), and 9 other
tenants share another 1,000,000 rows, so the per-tenant indexes have company.
Every ``sent_at`` and ``failed_at`` is spread evenly over the hour before
"now", which puts 1/12 of them (about 75,000 of the measured tenant's rows) in
the last five minutes; deliveries and reads follow their send by up to a
minute. Broadcast counters are computed from the rows, and the tables are
VACUUM ANALYZEd, as autovacuum would have done on a live system.

A real ``wabroadcast serve --no-worker`` answers with its cache off
(``WABROADCAST_METRICS_CACHE_S=0``), so every request runs the queries, and with
a rate limit the bench stays under (the check still runs on each request); each
answer is checked to be uncached. The figure is the 99th percentile of 1,000
sequential requests after 50 warm-up ones, timed from the client (API key
lookup, queries, JSON and HTTP included). The answer's numbers go to stderr.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import httpx
import psycopg

from bench.support import report, running_server, scratch_database, wabroadcast

BROADCASTS = 200
RECIPIENTS_PER_BROADCAST = 5_000
ACTIVE_BROADCASTS = 5
OTHER_TENANTS = 9
OTHER_RECIPIENTS = 1_000_000
WARMUP = 50
REQUESTS = 1_000

# Recipient statuses by the position g of a row in its broadcast: every 20th
# failed, the rest sent, delivered (every 5th) or read (every 4th of those);
# in an active broadcast the last 40% are still queued and 1% sending.
_RECIPIENT_ROWS = """
INSERT INTO whatsapp_broadcast_recipients (broadcast_id, tenant_id, session_id, raw_input,
    phone, status, attempts, queued_at, updated_at, sent_at, delivered_at, read_at, failed_at)
SELECT b.id, b.tenant_id, b.session_id, p.phone, p.phone, s.status, 1,
       now() - interval '2 hours', now(),
       CASE WHEN s.status IN ('sent', 'delivered', 'read') THEN t.at END,
       CASE WHEN s.status IN ('delivered', 'read')
            THEN least(now(), t.at + random() * interval '1 minute') END,
       CASE WHEN s.status = 'read' THEN least(now(), t.at + interval '1 minute') END,
       CASE WHEN s.status = 'failed' THEN t.at END
FROM whatsapp_broadcasts AS b
CROSS JOIN generate_series(1, %(per_broadcast)s) AS g
CROSS JOIN LATERAL (SELECT '+9725' || lpad(g::text, 8, '0') AS phone) AS p
CROSS JOIN LATERAL (SELECT now() - random() * interval '1 hour' AS at) AS t
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN b.status <> 'completed' AND g > %(per_broadcast)s * 0.6 THEN 'queued'
        WHEN b.status <> 'completed' AND g > %(per_broadcast)s * 0.59 THEN 'sending'
        WHEN g %% 20 = 0 THEN 'failed'
        WHEN g %% 20 = 1 THEN 'read'
        WHEN g %% 5 = 0 THEN 'delivered'
        ELSE 'sent'
    END AS status
) AS s
WHERE b.tenant_id = ANY(%(tenants)s)
"""

_COUNTERS = """
UPDATE whatsapp_broadcasts AS b
SET queued_count = c.queued, sending_count = c.sending, sent_count = c.sent,
    delivered_count = c.delivered, read_count = c.read, failed_count = c.failed,
    total_recipients = c.total
FROM (
    SELECT broadcast_id,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'sending') AS sending,
           count(*) FILTER (WHERE status = 'sent') AS sent,
           count(*) FILTER (WHERE status = 'delivered') AS delivered,
           count(*) FILTER (WHERE status = 'read') AS read,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) AS total
    FROM whatsapp_broadcast_recipients GROUP BY broadcast_id
) AS c
WHERE c.broadcast_id = b.id
"""


def _broadcasts(conn: psycopg.Connection, tenant_id: int, session_id: str, count: int) -> None:
    """``count`` broadcasts of one tenant, the newest ``ACTIVE_BROADCASTS`` not finished."""
    conn.execute(
        """
        INSERT INTO whatsapp_broadcasts (tenant_id, session_id, status, message,
            connection_check, total_recipients, invalid_recipients_count, duplicates_removed,
            invalid_recipients, queued_count, sending_count, sent_count, delivered_count,
            read_count, failed_count, cancelled_count, created_at, updated_at)
        SELECT %(tenant)s, %(session)s,
               CASE %(count)s - g WHEN 0 THEN 'running' WHEN 1 THEN 'running'
                    WHEN 2 THEN 'running' WHEN 3 THEN 'queued' WHEN 4 THEN 'paused'
                    ELSE 'completed' END,
               'Bench', 'connected', 0, 0, 0, '[]', 0, 0, 0, 0, 0, 0, 0,
               now() - (%(count)s - g) * interval '15 seconds', now()
        FROM generate_series(1, %(count)s) AS g
        """,
        {"tenant": tenant_id, "session": session_id, "count": count},
    )


def _other_tenants(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """Tenants (and their default sessions) besides the measured one."""
    rows = conn.execute(
        """
        INSERT INTO tenants (name, api_key_hash, api_key_prefix, default_region, created_at)
        SELECT 'Neighbour ' || g, md5('bench-neighbour-' || g) || md5('key-' || g), 'wab_bench',
               'IL', now()
        FROM generate_series(1, %(count)s) AS g
        RETURNING id
        """,
        {"count": OTHER_TENANTS},
    ).fetchall()
    tenants = [(int(row[0]), f"business_{row[0]}") for row in rows]
    for tenant_id, session_id in tenants:
        conn.execute(
            """
            INSERT INTO whatsapp_sessions (id, tenant_id, provider, config, is_default,
                max_concurrency, lease_epoch_seq, webhook_secret, created_at)
            VALUES (%s, %s, 'simulator', '{}', true, 1, 0, md5(%s), now())
            """,
            (session_id, tenant_id, session_id),
        )
    return tenants


def _seed(url: str, tenant_id: int, session_id: str) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        _broadcasts(conn, tenant_id, session_id, BROADCASTS)
        conn.execute(
            _RECIPIENT_ROWS,
            {"per_broadcast": RECIPIENTS_PER_BROADCAST, "tenants": [tenant_id]},
        )
        neighbours = _other_tenants(conn)
        per_neighbour = BROADCASTS // 10
        for neighbour_id, neighbour_session in neighbours:
            _broadcasts(conn, neighbour_id, neighbour_session, per_neighbour)
        conn.execute(
            _RECIPIENT_ROWS,
            {
                "per_broadcast": OTHER_RECIPIENTS // (OTHER_TENANTS * per_neighbour),
                "tenants": [neighbour_id for neighbour_id, _ in neighbours],
            },
        )
        conn.execute(_COUNTERS)
        conn.execute("VACUUM ANALYZE whatsapp_broadcast_recipients")
        conn.execute("VACUUM ANALYZE whatsapp_broadcasts")
        rows = conn.execute(
            "SELECT tenant_id = %s, count(*) FROM whatsapp_broadcast_recipients GROUP BY 1",
            (tenant_id,),
        ).fetchall()
    counts = {bool(mine): int(count) for mine, count in rows}
    print(
        f"# metrics bench: {counts[True]:,} recipient rows in the measured tenant, "
        f"{counts[False]:,} in {OTHER_TENANTS} others",
        file=sys.stderr,
    )


def run() -> None:
    with scratch_database("postgres") as url:
        env = {"WABROADCAST_DATABASE_URL": url}
        wabroadcast("db", "upgrade", env=env)
        tenant = json.loads(wabroadcast("tenant", "create", "--name", "Bench", env=env))
        seeded = time.perf_counter()
        _seed(url, tenant["tenant_id"], tenant["session_id"])
        print(f"# metrics bench: seeded in {time.perf_counter() - seeded:.0f} s", file=sys.stderr)
        # 1,050 requests of one tenant, one after another as fast as they are answered:
        # more than the default API rate limit (600 a minute) lets through. A limit they
        # stay under keeps its check (one statement per request) in the figure.
        server_env = {
            "WABROADCAST_METRICS_CACHE_S": "0",
            "WABROADCAST_RATE_LIMIT_PER_MINUTE": "1000000",
        }
        with running_server(url, "--no-worker", env=server_env) as (base_url, _pid):
            headers = {"Authorization": f"Bearer {tenant['api_key']}"}
            timings_ms: list[float] = []
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
                for request_no in range(WARMUP + REQUESTS):
                    started = time.perf_counter()
                    response = client.get("/api/whatsapp/metrics")
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if response.status_code != 200 or response.json()["cached"]:
                        raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
                    if request_no >= WARMUP:
                        timings_ms.append(elapsed_ms)
            print(f"# metrics bench: answer {response.text}", file=sys.stderr)
        percentiles = statistics.quantiles(timings_ms, n=100, method="inclusive")
        print(
            f"# metrics bench: p50 {percentiles[49]:.1f} ms, p90 {percentiles[89]:.1f} ms",
            file=sys.stderr,
        )
        report("metrics_p99_ms", percentiles[98], "ms")
