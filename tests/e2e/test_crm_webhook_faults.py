"""A CRM webhook owed by a worker that is killed with SIGKILL is delivered by the next one.

Setup and reads go through the API in-process; deliveries are made only by
``wabroadcast worker`` processes on a PostgreSQL database of the test's own, to a
real HTTP receiver in this process that holds the first request open, so the
worker is killed in the middle of the delivery it owes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support.databases import create_pg_database, drop_pg_database, pg_url
from tests.support.dispatch import create, unpaced
from tests.support.rows import il_numbers
from tests.support.tenants import TEST_SECRET_KEY, make_tenant
from tests.support.webhook_receiver import Receiver, running_receiver
from wabroadcast.api.app import build_context, create_app
from wabroadcast.config import Settings
from wabroadcast.context import AppContext
from wabroadcast.crm_webhooks.repository import ABANDONED_ATTEMPT
from wabroadcast.db import migrate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SECRET = "crm-shared-secret-0123456789"
WORKER_ENV = {
    "WABROADCAST_LEASE_TTL_S": "2",
    "WABROADCAST_WORKER_POLL_S": "0.2",
    "WABROADCAST_WEBHOOK_LEASE_S": "2",
    "WABROADCAST_LOG_LEVEL": "warning",
    "WABROADCAST_SECRET_KEY": TEST_SECRET_KEY,
}


@pytest.fixture
def webhook_db(pg_database: str) -> Iterator[str]:
    """A database of its own: worker processes connect to it from outside the test."""
    del pg_database  # only for its skip-or-fail check
    name = create_pg_database("wab_crm_hooks")
    url = pg_url(name)
    migrate.upgrade(url)
    yield url
    drop_pg_database(name)


@pytest.fixture
async def wctx(webhook_db: str) -> AsyncIterator[AppContext]:
    context = build_context(
        Settings(database_url=webhook_db, secret_key=SecretStr(TEST_SECRET_KEY))
    )
    yield context
    await context.database.dispose()


@pytest.fixture
async def wclient(wctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(wctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def start_worker(webhook_db: str, tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / f"worker-{len(processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "wabroadcast", "worker"],
                env={**os.environ, **WORKER_ENV, "WABROADCAST_DATABASE_URL": webhook_db},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout_s}s"
        await asyncio.sleep(0.1)


async def test_a_delivery_owed_by_a_killed_worker_is_made_by_the_next_worker(
    wclient: httpx.AsyncClient, wctx: AppContext, receiver: Receiver, start_worker: Any
) -> None:
    tenant = await make_tenant(wctx)
    await unpaced(wctx, tenant.session_id)
    created = await wclient.post(
        "/api/whatsapp/webhook-subscriptions",
        json={
            "url": receiver.url,
            "events": ["broadcast.queued", "broadcast.completed"],
            "secret": SECRET,
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    deliveries_path = f"/api/whatsapp/webhook-subscriptions/{created.json()['id']}/deliveries"

    async def deliveries() -> list[dict[str, Any]]:
        page = await wclient.get(deliveries_path, headers=tenant.headers)
        assert page.status_code == 200, page.text
        items: list[dict[str, Any]] = page.json()["items"]
        return list(reversed(items))  # oldest first

    receiver.hold.set()  # the CRM takes the first request and never answers it
    broadcast_id = await create(wclient, tenant, il_numbers(3), "kill the deliverer")
    first = start_worker()

    async def arrived() -> bool:
        return receiver.arrived.is_set()

    await until(arrived, 60, "the first delivery")
    first.send_signal(signal.SIGKILL)
    first.wait()
    receiver.hold.clear()
    owed = await deliveries()
    assert (owed[0]["event_type"], owed[0]["status"]) == ("broadcast.queued", "pending")

    start_worker()

    async def all_delivered() -> bool:
        items = await deliveries()
        return len(items) == 2 and {d["status"] for d in items} == {"delivered"}

    await until(all_delivered, 120, "the deliveries by the second worker")
    queued, completed = await deliveries()
    assert (queued["event_type"], completed["event_type"]) == (
        "broadcast.queued",
        "broadcast.completed",
    )
    assert [(a["status_code"], a["error"]) for a in queued["attempts"]] == [
        (None, ABANDONED_ATTEMPT),
        (200, None),
    ]
    assert completed["data"]["broadcast_id"] == broadcast_id
    assert completed["data"]["sent_count"] == 3
    types = receiver.types()
    assert types == ["broadcast.queued", "broadcast.queued", "broadcast.completed"]
    assert receiver.received[0].event_id == receiver.received[1].event_id == queued["event_id"]
    assert all(request.signed_by(SECRET) for request in receiver.received)
