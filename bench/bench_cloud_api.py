"""``cloud_api_dispatch_msgs_per_s``: the Cloud API adapter and worker against a local Graph fake.

CLOUD: 8 Cloud API sessions x ``max_concurrency`` 16, unpaced (a number on Meta's
1,000 msgs/s tier), 2,500 recipients each (20,000 in all), on PostgreSQL. The
"Graph API" is the fake of tests/support/fake_graph.py in a process of its own,
answering every send at once (zero latency) with a new wamid, with recording
off; the sends go over real HTTP through the real adapter (httpx) in a real
``wabroadcast worker`` process. The Cloud API takes no client message id, so
this measures the one-at-a-time path: each recipient is committed as sending
just before its own call. The database is seeded like the dispatch figures
(bench_dispatch.seed), each session's secrets encrypted with a fresh key that
the worker is given. Timed like them: from the earliest broadcast
``started_at`` to the latest ``finished_at``, every recipient ``sent``; the
figure is the best of RUNS runs, each on a fresh database, the fake's count of
sends received goes to stderr with the worker's CPU use.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.bench_dispatch import (
    RUNS,
    Shape,
    analyze,
    note,
    runs_note,
    seed,
    wait_all_final,
    worker_process,
)
from bench.support import free_port, report, scratch_database, wabroadcast
from wabroadcast.crypto import SecretBox, new_key
from wabroadcast.providers.registry import plugin_for
from wabroadcast.sessions.config import split_secrets, validate_config

CLOUD = Shape(
    sessions=8, max_concurrency=16, recipients_per_session=2500, latency_ms=0, deliver_after_ms=None
)
TOKEN = "bench-access-token"  # noqa: S105  (the fake Graph API's, nothing real)


def _phone_number_id(session_id: str) -> str:
    return f"10000000000{int(session_id.removeprefix('bench_')):04d}"


@contextlib.contextmanager
def _fake_graph(shape: Shape) -> Iterator[str]:
    """The fake Graph API in its own process, knowing every session's number."""
    port = free_port()
    numbers = [f"{_phone_number_id(f'bench_{n}')}:{TOKEN}" for n in range(shape.sessions)]
    args = [sys.executable, "-m", "tests.support.fake_graph", "--port", str(port), "--no-record"]
    for number in numbers:
        args += ["--number", number]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/v23.0/0", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fake Graph API did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _session_values(base_url: str, box: SecretBox) -> Any:
    plugin = plugin_for("cloud_api")

    def values(session_id: str) -> dict[str, Any]:
        config = validate_config(
            plugin,
            {
                "phone_number_id": _phone_number_id(session_id),
                "access_token": TOKEN,
                "app_secret": "bench-app-secret",
                "verify_token": "bench-verify-token",
                "graph_base_url": base_url,
            },
        )
        plain, hidden = split_secrets(plugin, config)
        return {
            "config": plain,
            "secret_config": box.encrypt(hidden),
            "webhook_key": plugin.webhook_key(session_id, config),
        }

    return values


async def _measure(url: str, shape: Shape, key: str, name: str) -> tuple[float, float]:
    engine = create_async_engine(url)
    try:
        with worker_process(url, name, WABROADCAST_SECRET_KEY=key) as worker:
            done = await wait_all_final(engine, shape, worker, timeout_s=300)
    finally:
        await engine.dispose()
    first, last = done.progress.first_started, done.progress.last_finished
    assert first is not None
    assert last is not None
    return shape.total / (last - first).total_seconds(), done.cpu_cores


def run(backend: str = "postgres", shape: Shape = CLOUD) -> None:
    name = "cloud_api_dispatch_msgs_per_s"
    runs: list[tuple[float, float]] = []
    for _ in range(RUNS):
        key = new_key()
        with _fake_graph(shape) as base_url, scratch_database(backend) as url:
            wabroadcast("db", "upgrade", env={"WABROADCAST_DATABASE_URL": url})
            asyncio.run(
                seed(
                    url,
                    shape,
                    provider="cloud_api",
                    session_values=_session_values(base_url, SecretBox(key)),
                )
            )
            if url.startswith("postgresql"):
                analyze(url)
            runs.append(asyncio.run(_measure(url, shape, key, name)))
    rate, cores = max(runs)
    note(
        f"{name}: {shape.sessions} Cloud API sessions x {shape.max_concurrency} slots, "
        f"{shape.total:,} recipients against a local fake Graph API; "
        f"{runs_note([r for r, _ in runs])}; worker CPU {cores:.2f} cores in the best"
    )
    report(name, rate, "msgs/s")


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else "postgres")
