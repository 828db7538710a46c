"""Prometheus across processes: a shared PROMETHEUS_MULTIPROC_DIR, and a worker's own port."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import cli, free_port

# What a worker records for one successful send in a slot it leased and gave back.
RECORD_ONE_SEND = """
from wabroadcast.observability.prometheus import record_lease, record_send
record_lease("acquired")
record_send("simulator", "sent", None, 0.02, 1.5)
record_lease("released")
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[None]:
    """A ``wabroadcast`` process, stopped with SIGTERM afterwards; waits for ``ready_url``."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wabroadcast", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"{args[0]} did not start"
                time.sleep(0.1)
            yield
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_serve_and_a_worker_port_show_the_sum_of_every_process_sharing_the_directory(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "prometheus"  # created by the first process that needs it
    env = {
        "WABROADCAST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'prom.db'}",
        "WABROADCAST_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    created = cli("tenant", "create", "--name", "Shop", env=env)
    assert created.returncode == 0, created.stderr
    tenant_id = str(json.loads(created.stdout)["tenant_id"])
    # Two worker-like processes record and exit: their numbers must outlive them.
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", RECORD_ONE_SEND],
            env={**os.environ, **env},
            check=True,
            timeout=60,
        )
    serve_port, worker_port = free_port(), free_port()
    serve_url = f"http://127.0.0.1:{serve_port}/metrics"
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    with (
        running(
            ["serve", "--no-worker", "--port", str(serve_port)],
            env,
            tmp_path / "serve.log",
            f"http://127.0.0.1:{serve_port}/healthz",
        ),
        running(
            ["worker", "--metrics-port", str(worker_port)],
            env,
            tmp_path / "worker.log",
            worker_url,
        ),
    ):
        from_serve = scrape(serve_url)
        from_worker = scrape(worker_url)

    sent = {"provider": "simulator", "outcome": "sent", "error_code": ""}
    for samples in (from_serve, from_worker):
        assert value(samples, "wabroadcast_sends_total", **sent) == 2
        assert (
            value(
                samples,
                "wabroadcast_send_latency_seconds_count",
                provider="simulator",
                outcome="sent",
            )
            == 2
        )
        assert value(samples, "wabroadcast_send_queue_wait_seconds_sum", provider="simulator") == 3
        assert value(samples, "wabroadcast_lease_events_total", event="acquired") == 2
        assert value(samples, "wabroadcast_lease_events_total", event="released") == 2
        assert value(samples, "wabroadcast_lease_events_total", event="lost") == 0
    # The database gauges are the API's: read once per scrape, not once per process.
    assert value(from_serve, "wabroadcast_pending_recipients", tenant_id=tenant_id) == 0
    assert value(from_serve, "wabroadcast_database_up") == 1
    assert value(from_worker, "wabroadcast_pending_recipients", tenant_id=tenant_id) is None


def test_a_worker_without_a_shared_directory_serves_its_own_metrics(tmp_path: Path) -> None:
    env = {
        "WABROADCAST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'solo.db'}",
        "WABROADCAST_LOG_LEVEL": "warning",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with running(["worker", "--metrics-port", str(port)], env, tmp_path / "worker.log", url):
        response = httpx.get(url, timeout=10)
    types = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert types["wabroadcast_sends"] == "counter"
    assert types["wabroadcast_send_latency_seconds"] == "histogram"
    assert types["process_cpu_seconds"] == "counter"  # this process's own
