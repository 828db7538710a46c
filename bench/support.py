"""Shared pieces of the benchmarks: throwaway databases and a real server process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from wabroadcast.crypto import new_key

PG_ADMIN_DSN = os.environ.get(
    "WABROADCAST_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# The key every child process of a bench run reads provider secrets with (PostgreSQL
# needs one; a bench that stores secrets passes its own).
SECRET_KEY = os.environ.get("WABROADCAST_SECRET_KEY") or new_key()


def report(name: str, value: float, unit: str) -> None:
    """One figure, in the one format ``make bench`` promises."""
    print(f"{name}: {value:.1f} {unit}", flush=True)


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A URL to an empty database of ``backend`` that is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="wab-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        return
    name = f"wab_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
        yield (
            f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
            f":{info.get('port', '5432')}/{name}"
        )
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wabroadcast(*args: str, env: dict[str, str]) -> str:
    """Run the CLI and return its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "wabroadcast", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@contextlib.contextmanager
def running_server(
    database_url: str, *extra_args: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``wabroadcast serve`` in a child process; yields its base URL and pid.

    ``env`` adds to (or overrides) the child's environment.
    """
    port = free_port()
    child_env = {
        **os.environ,
        "WABROADCAST_DATABASE_URL": database_url,
        "WABROADCAST_LOG_LEVEL": "warning",
        "WABROADCAST_SECRET_KEY": SECRET_KEY,
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "wabroadcast", "serve", "--port", str(port), *extra_args],
        env=child_env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 60 s")
            time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def running_worker(
    database_url: str, log_path: Path | None = None, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``wabroadcast worker`` in a child process, stopped (SIGTERM, then SIGKILL) afterwards.

    Started the way the fault tests start it, with ``WABROADCAST_LOG_LEVEL=warning``.
    Its log goes to ``log_path`` when given, else to our stderr, so that stdout
    keeps only the ``name: value unit`` lines.
    """
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(log_path.open("wb")) if log_path else sys.stderr
        process = subprocess.Popen(
            [sys.executable, "-m", "wabroadcast", "worker"],
            env={
                **os.environ,
                "WABROADCAST_DATABASE_URL": database_url,
                "WABROADCAST_LOG_LEVEL": "warning",
                "WABROADCAST_SECRET_KEY": SECRET_KEY,
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
