"""The database going away in the middle of a broadcast, with real processes.

A private PostgreSQL cluster (its own data directory and port, made by ``initdb``
and started by the test) serves ``wabroadcast serve --no-worker`` and one
``wabroadcast worker``. The cluster is stopped while a 2,000-recipient broadcast
is being sent and started again a few seconds later: the API answers 503
``DATABASE_UNAVAILABLE`` meanwhile and 200 afterwards without a restart, the
worker rides the outage out, the broadcast completes, every recipient gets its
receipt, and the simulator's send log shows nobody got the message twice.

Skipped locally when ``initdb`` (or, as root, ``runuser`` and a ``postgres``
user) is missing; a failure under CI=true.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import cli, free_port
from tests.support.databases import IN_CI
from tests.support.rows import il_numbers

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BROADCASTS = "/api/whatsapp/broadcasts"
FINAL_BROADCAST = {"completed", "partial", "failed", "cancelled"}
FINAL_RECIPIENT = {"sent", "delivered", "read", "failed", "cancelled"}
RECIPIENTS = 2_000
OUTAGE_S = 3.0
# A timeout is a failure (the broadcast is stuck), not a bound on speed.
RECOVERY_TIMEOUT_S = 120.0
# Fast failure handling, as in the fault tests: a lost lease expires in 2 s.
WORKER_ENV = {
    "WABROADCAST_LEASE_TTL_S": "2",
    "WABROADCAST_WORKER_POLL_S": "0.2",
    "WABROADCAST_RETRY_BASE_S": "0.05",
    "WABROADCAST_RETRY_CAP_S": "0.5",
    "WABROADCAST_LOG_LEVEL": "warning",
}


def _unavailable(problem: str) -> None:
    if IN_CI:
        pytest.fail(f"the database restart test needs a private PostgreSQL in CI: {problem}")
    pytest.skip(problem)


def _pg_bin() -> Path | None:
    """The PostgreSQL server binaries: WABROADCAST_TEST_PG_BIN, the PATH, or Debian's."""
    if configured := os.environ.get("WABROADCAST_TEST_PG_BIN"):
        return Path(configured)
    if on_path := shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, run as the ``postgres`` user when we are root."""

    bin: Path
    folder: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/wabroadcast"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.folder} "
            # A test cluster: nothing needs to survive a crash of the machine.
            "-c fsync=off -c full_page_writes=off"
        )
        done = self.run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
            "-o", options,
        )  # fmt: skip
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{self.server_log()}"

    def stop(self, mode: str = "fast") -> None:
        done = self.run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{self.server_log()}"

    def running(self) -> bool:
        return self.run("pg_ctl", "status", "-D", str(self.data)).returncode == 0

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """``initdb`` in a temporary directory, started on a free port; stopped and removed after."""
    pg_bin = _pg_bin()
    if pg_bin is None or not (pg_bin / "initdb").exists():
        _unavailable("initdb not found (set WABROADCAST_TEST_PG_BIN or install PostgreSQL)")
        raise AssertionError("unreachable")
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            _unavailable("as root, the private cluster needs runuser and a postgres user")
            raise AssertionError("unreachable")
        as_user = [runuser, "-u", "postgres", "--"]
    # Not under pytest's tmp_path: as root that is a directory only root can enter.
    folder = Path(tempfile.mkdtemp(prefix="wab-pg-"))
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    cluster = PrivatePostgres(pg_bin, folder, free_port(), as_user)
    try:
        made = cluster.run(
            "initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        cluster.start()
        admin = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE wabroadcast")
        yield cluster
    finally:
        if cluster.data.exists() and cluster.running():
            cluster.run("pg_ctl", "stop", "-D", str(cluster.data), "-m", "immediate", "-w")
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Deployment:
    base_url: str
    headers: dict[str, str]
    session_id: str
    serve: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    logs: Path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def deployment(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[Deployment]:
    """The schema, a tenant, ``serve --no-worker`` and one ``worker``, all on the cluster."""
    key = cli("secret-key", env={})
    assert key.returncode == 0, key.stderr
    env = {
        **WORKER_ENV,
        "WABROADCAST_DATABASE_URL": private_postgres.url,
        "WABROADCAST_SECRET_KEY": key.stdout.strip(),
    }
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    created = cli("tenant", "create", "--name", "Restart shop", "--provider", "simulator", env=env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    session_id: str = tenant["session_id"]
    # Unpaced, two sends in flight; the scenario's latency sets the speed (below).
    paced = cli(
        "session", "set", session_id,
        "--rate-per-minute", "0", "--max-concurrency", "2", "--jitter-ms", "0",
        env=env,
    )  # fmt: skip
    assert paced.returncode == 0, paced.stderr
    port = free_port()
    commands: dict[str, list[str]] = {
        "serve": ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        "worker": ["worker"],
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in commands.items():
            with (tmp_path / f"{name}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "wabroadcast", *args],
                        env={**os.environ, **env},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        serve, worker = started
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {tenant['api_key']}"}
        yield Deployment(base_url, headers, session_id, serve, worker, tmp_path)
    finally:
        for process in reversed(started):
            _stop(process)


def _every_page(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 500}
    while True:
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert (body["success"], body["error_code"]) == (False, "DATABASE_UNAVAILABLE")
    assert int(response.headers["Retry-After"]) > 0


def test_a_postgresql_restart_mid_broadcast_loses_nothing_and_sends_nothing_twice(
    private_postgres: PrivatePostgres, deployment: Deployment
) -> None:
    logs = deployment.logs
    with httpx.Client(base_url=deployment.base_url, headers=deployment.headers, timeout=10) as http:
        # About 4 ms a send, two at a time: 2,000 take a few seconds, the restart lands mid-way.
        # Receipts come 200 ms after a send, so every recipient should end delivered.
        scenario = http.put(
            "/api/whatsapp/simulator", json={"latency_ms": 4, "deliver_after_ms": 200}
        )
        assert scenario.status_code == 200, scenario.text
        numbers = il_numbers(RECIPIENTS)
        created = http.post(BROADCASTS, json={"message": "restart", "recipients": numbers})
        assert created.status_code == 202, created.text
        path = f"{BROADCASTS}/{created.json()['broadcast_id']}"

        deadline = time.monotonic() + 60
        while (b := http.get(path).json())["sent_count"] < 300:
            assert time.monotonic() < deadline, f"sending did not start: {b}"
            time.sleep(0.02)
        assert b["status"] not in FINAL_BROADCAST, "finished before the restart could land"

        private_postgres.stop("fast")
        down_until = time.monotonic() + OUTAGE_S
        while time.monotonic() < down_until:
            _assert_unavailable(http.get(path))
            time.sleep(0.5)
        private_postgres.start()

        # Recovers by itself: no restart of serve or of the worker. Completed first, then
        # every receipt (a send whose caller died in the outage gets its receipt too,
        # some seconds after WhatsApp answered it).
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while True:
            response = http.get(path)
            if response.status_code == 200:
                b = response.json()
                if b["status"] in FINAL_BROADCAST and b["delivered_count"] == RECIPIENTS:
                    break
            else:
                _assert_unavailable(response)  # a stale connection or two, never a 500
            assert time.monotonic() < deadline, (
                f"not completed and delivered {RECOVERY_TIMEOUT_S}s after the restart: "
                f"{response.text}\n" + (logs / "worker.log").read_text()[-4000:]
            )
            time.sleep(0.2)

        assert (b["status"], b["sent_count"], b["failed_count"], b["queued_count"]) == (
            "completed",
            RECIPIENTS,
            0,
            0,
        )
        rows = _every_page(http, f"{path}/recipients")
        assert len(rows) == RECIPIENTS
        assert {r["status"] for r in rows} <= FINAL_RECIPIENT
        # Each got the receipt of the one send that reached WhatsApp.
        assert Counter(r["status"] for r in rows) == {"delivered": RECIPIENTS}
        log = _every_page(http, "/api/whatsapp/simulator/sends")
        delivered = Counter(
            s["phone"] for s in log if not s["repeat"] and s["outcome"] in ("sent", None)
        )
        assert set(delivered) == set(numbers)  # nobody lost
        assert max(delivered.values()) == 1  # nobody twice
        assert {r["provider_message_id"] for r in rows} == {
            s["provider_message_id"] for s in log if not s["repeat"] and s["outcome"] == "sent"
        }

    assert deployment.worker.poll() is None, (logs / "worker.log").read_text()[-4000:]
    assert deployment.serve.poll() is None, (logs / "serve.log").read_text()[-4000:]
