"""GET /metrics: the Prometheus exposition, parsed the way Prometheus parses it.

Counters are process-wide and other tests record too, so dispatch numbers are
asserted as the difference between a scrape before and a scrape after.
"""

from __future__ import annotations

import re

import httpx
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dispatch import broadcast, create, drain, scenario, unpaced
from tests.support.metrics_rows import Row, store_broadcast
from tests.support.tenants import START, TenantFixture, make_tenant
from wabroadcast.api.app import build_context, create_app
from wabroadcast.clock import FrozenClock
from wabroadcast.config import Settings
from wabroadcast.context import AppContext

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILIES = {
    "wabroadcast_sends": "counter",
    "wabroadcast_send_latency_seconds": "histogram",
    "wabroadcast_send_queue_wait_seconds": "histogram",
    "wabroadcast_lease_events": "counter",
    "wabroadcast_send_retries": "counter",
    "wabroadcast_pending_recipients": "gauge",
    "wabroadcast_active_broadcasts": "gauge",
    "wabroadcast_database_up": "gauge",
}


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of a metric over all its label sets."""
    return sum(v for (sample_name, _), v in samples.items() if sample_name == name)


async def test_the_exposition_parses_with_every_family_and_its_type(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    types = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert {name: types.get(name) for name in FAMILIES} == FAMILIES
    samples = parse(response.text)
    assert value(samples, "wabroadcast_database_up") == 1
    for event in ("acquired", "renewed", "lost", "released"):
        assert ("wabroadcast_lease_events_total", (("event", event),)) in samples


async def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text;")
    assert response.text.endswith("# EOF\n")
    # prometheus-client leaves its OpenMetrics parser untyped.
    families = openmetrics_families(response.text)  # type: ignore[no-untyped-call]
    names = {family.name for family in families}
    assert set(FAMILIES) <= names


async def test_backlog_gauges_are_read_from_the_database_for_every_tenant(
    ctx: AppContext, client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    busy = await make_tenant(ctx, "Busy shop")
    idle = await make_tenant(ctx, "Idle shop")
    await store_broadcast(ctx, tenant, "running", [Row("queued"), Row("sending"), Row("sent")])
    await store_broadcast(ctx, busy, "queued", [Row("queued")] * 4)
    await store_broadcast(ctx, busy, "paused", [Row("queued")] * 2)
    await store_broadcast(ctx, busy, "completed", [Row("sent", sent_at=START)] * 3)
    samples = await scrape(client)
    pending = {
        labels[0][1]: v
        for (name, labels), v in samples.items()
        if name == "wabroadcast_pending_recipients"
    }
    active = {
        labels[0][1]: v
        for (name, labels), v in samples.items()
        if name == "wabroadcast_active_broadcasts"
    }
    ids = [str(t.tenant_id) for t in (tenant, busy, idle)]
    assert pending == dict(zip(ids, [2.0, 6.0, 0.0], strict=True))
    assert active == dict(zip(ids, [1.0, 2.0, 0.0], strict=True))

    await store_broadcast(ctx, idle, "queued", [Row("queued")])
    again = await scrape(client)  # not cached: a gauge is read at every scrape
    assert value(again, "wabroadcast_pending_recipients", tenant_id=ids[2]) == 1


async def test_an_unreachable_database_still_answers_with_the_recorded_metrics(
    clock: FrozenClock,
) -> None:
    context = build_context(
        Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none"), clock=clock
    )
    try:
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
    finally:
        await context.database.dispose()
    assert response.status_code == 200
    types = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert types["wabroadcast_sends"] == "counter"
    assert "wabroadcast_pending_recipients" not in types
    assert value(parse(response.text), "wabroadcast_database_up") == 0


async def test_a_metrics_token_protects_the_exposition(
    settings: Settings, clock: FrozenClock
) -> None:
    token = "scrape-token-0123456789"
    context = build_context(settings.model_copy(update={"metrics_token": token}), clock=clock)
    try:
        tenant = await make_tenant(context)
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            missing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            # A tenant's API key is not the metrics token.
            tenant_key = await client.get("/metrics", headers=tenant.headers)
            right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            api = await client.get("/api/whatsapp/metrics", headers=tenant.headers)
    finally:
        await context.database.dispose()
    for refused, message in (
        (missing, "Missing bearer metrics token"),
        (wrong, "Invalid metrics token"),
        (tenant_key, "Invalid metrics token"),
    ):
        assert refused.status_code == 401
        assert refused.json() == {
            "success": False,
            "error_code": "UNAUTHORIZED",
            "message": message,
            "details": {},
        }
    assert right.status_code == 200
    assert "wabroadcast_database_up 1.0" in right.text
    assert api.status_code == 200


async def test_the_prometheus_text_is_not_part_of_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
    assert "/api/whatsapp/metrics" in paths


async def test_prometheus_output_after_a_real_broadcast(
    settings: Settings, clock: FrozenClock
) -> None:
    """Three recipients through the real dispatcher: one sent, one refused, one given up on.

    Needs the dispatcher to call ``record_send`` for every provider call (with the
    provider's outcome), ``record_retry`` for every re-queue after a transient error
    and ``record_lease`` for its slot leases.
    """
    context = build_context(settings.model_copy(update={"max_attempts": 2}), clock=clock)
    try:
        tenant = await make_tenant(context)
        tenant_label = str(tenant.tenant_id)
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await unpaced(context, tenant.session_id)
            await scenario(
                client,
                tenant,
                fail_numbers={"+972500000002": "NOT_ON_WHATSAPP", "+972500000003": "RATE_LIMITED"},
            )
            broadcast_id = await create(
                client, tenant, ["+972500000001", "+972500000002", "+972500000003"]
            )
            before = await scrape(client)
            assert value(before, "wabroadcast_pending_recipients", tenant_id=tenant_label) == 3
            await drain(context, clock)
            after_response = await client.get("/metrics")
            done = await broadcast(client, tenant, broadcast_id)
    finally:
        await context.database.dispose()
    assert (done["status"], done["sent_count"], done["failed_count"]) == ("partial", 1, 2)
    after = parse(after_response.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sends = "wabroadcast_sends_total"
    assert delta(sends, provider="simulator", outcome="sent", error_code="") == 1
    assert delta(sends, provider="simulator", outcome="failed", error_code="NOT_ON_WHATSAPP") == 1
    assert delta(sends, provider="simulator", outcome="retry_later", error_code="RATE_LIMITED") == 2
    assert total(after, sends) - total(before, sends) == 4
    assert (
        delta("wabroadcast_send_retries_total", provider="simulator", error_code="RATE_LIMITED")
        == 1
    )
    for histogram in ("wabroadcast_send_latency_seconds", "wabroadcast_send_queue_wait_seconds"):
        assert total(after, f"{histogram}_count") - total(before, f"{histogram}_count") == 4
    acquired = delta("wabroadcast_lease_events_total", event="acquired")
    assert acquired >= 1
    assert delta("wabroadcast_lease_events_total", event="released") == acquired
    assert delta("wabroadcast_lease_events_total", event="lost") == 0
    assert value(after, "wabroadcast_pending_recipients", tenant_id=tenant_label) == 0
    assert value(after, "wabroadcast_active_broadcasts", tenant_id=tenant_label) == 0
    # No phone number (or any long digit run) became a label value.
    long_digits = re.compile(r"\d{7,}")
    for (name, labels), _ in after.items():
        if name.startswith("wabroadcast_"):
            assert not any(long_digits.search(v) for _, v in labels), (name, labels)
