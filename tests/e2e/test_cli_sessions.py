"""``wabroadcast session …`` and ``secret-key`` as a person uses them, in real processes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography.fernet import Fernet

from tests.e2e.conftest import cli

TOKEN = "EAAG-a-long-access-token-7777"
APP_SECRET = "the-meta-app-secret-8888"


def _env(tmp_path: Path) -> dict[str, str]:
    return {"WABROADCAST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}


def _one_line_error(result: object) -> str:
    """The error a command printed: one line on stderr, non-zero exit, no traceback."""
    assert result.returncode != 0  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_secret_key_prints_a_key_fernet_takes() -> None:
    result = cli("secret-key", env={})
    assert result.returncode == 0
    Fernet(result.stdout.strip().encode())


def test_sessions_from_create_to_delete(tmp_path: Path) -> None:
    env = _env(tmp_path)
    tenant = json.loads(cli("tenant", "create", "--name", "Shop", env=env).stdout)
    created = cli(
        "session",
        "create",
        "--tenant",
        str(tenant["tenant_id"]),
        "--provider",
        "cloud_api",
        "--id",
        "shop_meta",
        "--config",
        "phone_number_id=100000000000001",
        "--config",
        f"access_token={TOKEN}",
        "--config",
        f"app_secret={APP_SECRET}",
        "--config",
        "verify_token=verify-me-please",
        "--config",
        "graph_base_url=http://127.0.0.1:9",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    session = json.loads(created.stdout)
    assert session["session_id"] == "shop_meta"
    assert session["config"]["access_token"] == "…7777"
    assert TOKEN not in created.stdout
    assert APP_SECRET not in created.stdout
    key_file = tmp_path / "cli.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert TOKEN.encode() not in (tmp_path / "cli.db").read_bytes()

    listed = json.loads(
        cli("session", "list", "--tenant", str(tenant["tenant_id"]), env=env).stdout
    )
    assert [s["session_id"] for s in listed] == [tenant["session_id"], "shop_meta"]

    shown = cli("session", "show", "shop_meta", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"]["state"] in {"unknown", "disconnected"}

    changed = cli(
        "session",
        "set",
        "shop_meta",
        "--config",
        "api_version=v24.0",
        "--max-concurrency",
        "4",
        env=env,
    )
    assert changed.returncode == 0, changed.stderr
    after = json.loads(changed.stdout)
    assert (after["config"]["api_version"], after["max_concurrency"]) == ("v24.0", 4)
    assert after["config"]["access_token"] == "…7777"

    deleted = cli("session", "delete", "shop_meta", env=env)
    assert (deleted.returncode, json.loads(deleted.stdout)) == (0, {"deleted": "shop_meta"})
    gone = _one_line_error(cli("session", "show", "shop_meta", env=env))
    assert gone.startswith("error: there is no WhatsApp session 'shop_meta'; ")
    assert "`wabroadcast session list --tenant TENANT_ID`" in gone


def test_mistakes_are_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    env = _env(tmp_path)
    unknown_provider = _one_line_error(
        cli("tenant", "create", "--name", "Shop", "--provider", "wati", env=env)
    )
    assert "'wati' is not a known provider" in unknown_provider
    assert "simulator, cloud_api, baileys, evolution, waha" in unknown_provider
    tenant = json.loads(cli("tenant", "create", "--name", "Shop", env=env).stdout)

    missing = _one_line_error(
        cli(
            "session",
            "create",
            "--tenant",
            str(tenant["tenant_id"]),
            "--provider",
            "cloud_api",
            "--config",
            f"access_token={TOKEN}",
            env=env,
        )
    )
    assert missing.startswith("error: config.phone_number_id: ")
    assert TOKEN not in missing

    no_such_session = _one_line_error(cli("session", "set", "nope", "--jitter-ms", "5", env=env))
    assert no_such_session.startswith("error: there is no WhatsApp session 'nope'; ")
    no_such_tenant = _one_line_error(cli("session", "list", "--tenant", "999", env=env))
    assert no_such_tenant == (
        "error: there is no tenant 999; `wabroadcast tenant list` lists the tenants"
    )


def test_serve_and_worker_refuse_postgresql_without_a_secret_key() -> None:
    env = {
        "WABROADCAST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/not_used",
        "WABROADCAST_SECRET_KEY": "",
    }
    for command in ("serve", "worker"):
        line = _one_line_error(cli(command, env=env))
        assert "WABROADCAST_SECRET_KEY is required with PostgreSQL" in line
        assert "wabroadcast secret-key" in line
    bad = _one_line_error(cli("worker", env={**env, "WABROADCAST_SECRET_KEY": "not-a-key"}))
    assert "not a Fernet key" in bad
