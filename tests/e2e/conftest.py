"""Real processes: the ``wabroadcast`` command and a server on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.databases import IN_CI


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wabroadcast", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    base_url: str
    env: dict[str, str]
    api_key: str
    tenant_id: int
    session_id: str


@contextlib.contextmanager
def running_server(folder: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """``wabroadcast serve`` on a new SQLite file in ``folder``, with one tenant made by the CLI."""
    env = {
        "WABROADCAST_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'e2e.db'}",
        "WABROADCAST_LOG_LEVEL": "warning",
        # Fuzzed scenarios make the simulated status check hang; fail open sooner.
        "WABROADCAST_CONNECTION_CHECK_TIMEOUT_S": "0.5",
        # Schemathesis sends well over the default 600 requests a minute with one key;
        # 429s would stand in for the answers it is there to check.
        "WABROADCAST_RATE_LIMIT_PER_MINUTE": "100000",
        **(extra_env or {}),
    }
    created = cli("tenant", "create", "--name", "E2E shop", env=env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "wabroadcast", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (folder / "server.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield Server(base_url, env, tenant["api_key"], tenant["tenant_id"], tenant["session_id"])
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as running:
        yield running


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium: skipped locally when it is missing, a failure under CI."""
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(f"browser tests need Chromium in CI: {problem}")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
