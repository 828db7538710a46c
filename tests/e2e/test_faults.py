"""Fault tests with real worker processes on PostgreSQL: kills, contention, failures, disconnects.

Setup and reads go through the API in-process; sending is done only by
``wabroadcast worker`` processes, which the tests start, kill with SIGKILL and
restart. The simulator's send log, written as each send happens, is the proof
of what reached "WhatsApp".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support.databases import create_pg_database, drop_pg_database, pg_url
from tests.support.dispatch import all_recipients, broadcast, create, scenario, sends, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import TEST_SECRET_KEY, TenantFixture, make_tenant
from wabroadcast.api.app import build_context, create_app
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.db import migrate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKER_ENV = {
    "WABROADCAST_LEASE_TTL_S": "2",
    "WABROADCAST_WORKER_POLL_S": "0.2",
    "WABROADCAST_RETRY_BASE_S": "0.05",
    "WABROADCAST_RETRY_CAP_S": "0.5",
    "WABROADCAST_DISCONNECTED_HOLD_S": "0.3",
    "WABROADCAST_LOG_LEVEL": "warning",
    "WABROADCAST_SECRET_KEY": TEST_SECRET_KEY,
}
FINAL = {"completed", "partial", "failed", "cancelled"}


@pytest.fixture
def fault_db(pg_database: str) -> Iterator[str]:
    """A database of its own: worker processes connect to it from outside the test."""
    del pg_database  # only for its skip-or-fail check
    name = create_pg_database("wab_fault")
    url = pg_url(name)
    migrate.upgrade(url)
    yield url
    drop_pg_database(name)


@pytest.fixture
async def fctx(fault_db: str) -> AsyncIterator[AppContext]:
    context = build_context(Settings(database_url=fault_db, secret_key=SecretStr(TEST_SECRET_KEY)))
    yield context
    await context.database.dispose()


@pytest.fixture
async def fclient(fctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(fctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


class Workers:
    """``wabroadcast worker`` processes against one database."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"worker-{len(self.processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "wabroadcast", "worker"],
                env={**os.environ, **WORKER_ENV, "WABROADCAST_DATABASE_URL": self.url},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def workers(fault_db: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(fault_db, tmp_path)
    yield group
    group.stop_all()


async def wait_final(
    client: httpx.AsyncClient, tenant: TenantFixture, broadcast_id: int, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        b = await broadcast(client, tenant, broadcast_id)
        if b["status"] in FINAL:
            return b
        await asyncio.sleep(0.3)
    raise AssertionError(f"broadcast not finished in {timeout_s}s: {b}")


def delivered_per_phone(log: list[dict[str, Any]]) -> Counter[str]:
    """How often each number really got the message: original sends that succeeded."""
    return Counter(s["phone"] for s in log if not s["repeat"] and s["outcome"] in ("sent", None))


async def test_kill_9_during_a_10000_recipient_broadcast_loses_nothing_and_sends_nothing_twice(
    fclient: httpx.AsyncClient, fctx: AppContext, workers: Workers
) -> None:
    tenant = await make_tenant(fctx)
    await unpaced(fctx, tenant.session_id, max_concurrency=2)
    await scenario(fclient, tenant, latency_ms=2, deliver_after_ms=None)
    numbers = il_numbers(10_000)
    broadcast_id = await create(fclient, tenant, numbers, "kill test")
    rng = random.Random(20261128)
    kills = 0
    process = workers.start()
    while kills < 4:
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        if (await broadcast(fclient, tenant, broadcast_id))["status"] in FINAL:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        process = workers.start()
    b = await wait_final(fclient, tenant, broadcast_id, timeout_s=300)
    assert kills >= 2, "the broadcast finished before the worker could be killed twice"
    assert (b["status"], b["sent_count"], b["failed_count"], b["queued_count"]) == (
        "completed",
        10_000,
        0,
        0,
    )
    rows = await all_recipients(fclient, tenant, broadcast_id)
    assert len(rows) == 10_000
    assert {r["status"] for r in rows} == {"sent"}
    log = (await sends(fclient, tenant))["items"]
    per_phone = delivered_per_phone(log)
    assert set(per_phone) == set(numbers)  # nobody lost
    assert max(per_phone.values()) == 1  # nobody twice


async def test_four_workers_keep_a_session_at_its_max_concurrency(
    fclient: httpx.AsyncClient, fctx: AppContext, workers: Workers
) -> None:
    tenant = await make_tenant(fctx)
    await unpaced(fctx, tenant.session_id, max_concurrency=2)
    await scenario(fclient, tenant, latency_ms=25, deliver_after_ms=None)
    broadcast_id = await create(fclient, tenant, il_numbers(400), "contention")
    for _ in range(4):
        workers.start()
    b = await wait_final(fclient, tenant, broadcast_id, timeout_s=180)
    assert (b["status"], b["sent_count"]) == ("completed", 400)
    log = await sends(fclient, tenant)
    assert log["hwm"] == 2
    assert max(delivered_per_phone(log["items"]).values()) == 1


async def test_ten_percent_transient_failures_all_end_sent_once(
    fclient: httpx.AsyncClient, fctx: AppContext, workers: Workers
) -> None:
    tenant = await make_tenant(fctx)
    await unpaced(fctx, tenant.session_id, max_concurrency=2)
    await scenario(fclient, tenant, fail_rate=0.1, deliver_after_ms=None)
    numbers = il_numbers(2_000)
    broadcast_id = await create(fclient, tenant, numbers, "flaky")
    workers.start()
    workers.start()
    b = await wait_final(fclient, tenant, broadcast_id, timeout_s=240)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("completed", 2_000, 0)
    rows = await all_recipients(fclient, tenant, broadcast_id)
    assert max(r["attempts"] for r in rows) > 1
    assert max(r["attempts"] for r in rows) <= 5
    log = (await sends(fclient, tenant))["items"]
    assert len(log) > 2_000  # the failures really happened
    delivered = Counter(s["phone"] for s in log if s["outcome"] == "sent" and not s["repeat"])
    assert set(delivered) == set(numbers)
    assert max(delivered.values()) == 1


async def test_a_disconnect_mid_broadcast_holds_and_a_reconnect_resumes(
    fclient: httpx.AsyncClient, fctx: AppContext, workers: Workers
) -> None:
    tenant = await make_tenant(fctx)
    await unpaced(fctx, tenant.session_id)
    await scenario(fclient, tenant, latency_ms=5, deliver_after_ms=None)
    broadcast_id = await create(fclient, tenant, il_numbers(500), "disconnect")
    workers.start()
    for _ in range(600):  # polling another process's progress; no event to wait on
        if (await broadcast(fclient, tenant, broadcast_id))["sent_count"] >= 50:
            break
        await asyncio.sleep(0.1)
    await scenario(fclient, tenant, connected=False)
    await asyncio.sleep(1.5)
    held = await broadcast(fclient, tenant, broadcast_id)
    await asyncio.sleep(1.5)
    still = await broadcast(fclient, tenant, broadcast_id)
    assert still["sent_count"] == held["sent_count"] < 500
    assert (still["status"], still["failed_count"]) == ("running", 0)
    await scenario(fclient, tenant, connected=True)
    b = await wait_final(fclient, tenant, broadcast_id, timeout_s=120)
    assert (b["status"], b["sent_count"], b["failed_count"]) == ("completed", 500, 0)
    failed_or_burned = [
        r for r in await all_recipients(fclient, tenant, broadcast_id) if r["attempts"] > 1
    ]
    assert failed_or_burned == []  # holding spent no attempts
