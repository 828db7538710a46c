"""``wabroadcast tenant rotate-key`` and ``tenant list`` as a person uses them, in real
processes; the rotated key against a real server."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, cli

ROTATED_FIELDS = {
    "tenant_id",
    "api_key",
    "api_key_prefix",
    "previous_key_prefix",
    "previous_key_valid_until",
}


def _env(tmp_path: Path) -> dict[str, str]:
    # The form people type: taken as sqlite+aiosqlite:// by every command.
    return {"WABROADCAST_DATABASE_URL": f"sqlite:///{tmp_path / 'tenants.db'}"}


def _json(*args: str, env: dict[str, str]) -> object:
    result = cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _created(env: dict[str, str], name: str) -> dict[str, object]:
    created = _json("tenant", "create", "--name", name, env=env)
    assert isinstance(created, dict)
    return created


def test_rotate_key_prints_the_new_key_and_the_old_ones_grace_as_json(tmp_path: Path) -> None:
    env = _env(tmp_path)
    tenant = _created(env, "Shop")
    old_key = str(tenant["api_key"])
    before = datetime.now(UTC)

    rotated = _json("tenant", "rotate-key", str(tenant["tenant_id"]), env=env)

    assert isinstance(rotated, dict)
    assert set(rotated) == ROTATED_FIELDS
    assert rotated["tenant_id"] == tenant["tenant_id"]
    new_key = str(rotated["api_key"])
    assert new_key.startswith("wab_")
    assert new_key != old_key
    assert rotated["api_key_prefix"] == new_key[:12]
    assert rotated["previous_key_prefix"] == old_key[:12]
    until = datetime.fromisoformat(str(rotated["previous_key_valid_until"]))
    assert before + timedelta(hours=24) <= until <= datetime.now(UTC) + timedelta(hours=24)

    at_once = _json("tenant", "rotate-key", str(tenant["tenant_id"]), "--grace", "0", env=env)
    assert isinstance(at_once, dict)
    assert (at_once["previous_key_prefix"], at_once["previous_key_valid_until"]) == (None, None)


def test_rotate_key_takes_the_documented_durations(tmp_path: Path) -> None:
    env = _env(tmp_path)
    tenant = _created(env, "Shop")
    for grace, seconds in (("90s", 90), ("30m", 1800), ("7d", 604_800)):
        before = datetime.now(UTC)
        rotated = _json("tenant", "rotate-key", str(tenant["tenant_id"]), "--grace", grace, env=env)
        assert isinstance(rotated, dict)
        until = datetime.fromisoformat(str(rotated["previous_key_valid_until"]))
        assert timedelta(seconds=seconds) <= until - before < timedelta(seconds=seconds + 60)


def test_tenant_list_shows_key_prefixes_and_never_a_key(tmp_path: Path) -> None:
    env = _env(tmp_path)
    empty = cli("tenant", "list", env=env)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "wabroadcast tenant create" in empty.stderr
    first = _created(env, "First shop")
    second = _created(env, "Second shop")
    rotated = _json("tenant", "rotate-key", str(first["tenant_id"]), "--grace", "2h", env=env)
    assert isinstance(rotated, dict)
    keys = [str(first["api_key"]), str(second["api_key"]), str(rotated["api_key"])]
    secrets = keys + [hashlib.sha256(key.encode()).hexdigest() for key in keys]

    table = cli("tenant", "list", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "REGION",
        "KEY",
        "PREVIOUS",
        "KEY",
        "VALID",
        "UNTIL",
        "CREATED",
    ]
    assert len(lines) == 3
    assert "First shop" in lines[1]
    assert "Second shop" in lines[2]
    assert f"{str(rotated['api_key'])[:12]}…" in lines[1]
    assert f"{str(first['api_key'])[:12]}…" in lines[1]
    assert f"{str(second['api_key'])[:12]}…" in lines[2]
    assert str(rotated["previous_key_valid_until"])[:10] in lines[1]

    as_json = _json("tenant", "list", "--json", env=env)
    assert isinstance(as_json, list)
    assert [t["tenant_id"] for t in as_json] == [first["tenant_id"], second["tenant_id"]]
    assert as_json[0]["api_key_prefix"] == str(rotated["api_key"])[:12]
    assert as_json[0]["previous_key_prefix"] == str(first["api_key"])[:12]
    assert as_json[0]["previous_key_valid_until"] == rotated["previous_key_valid_until"]
    assert as_json[1]["previous_key_prefix"] is None
    shown = table.stdout + table.stderr + json.dumps(as_json)
    for secret in secrets:
        assert secret not in shown


def test_a_rotated_key_against_a_running_server(server: Server) -> None:
    def status(api_key: str) -> int:
        headers = {"Authorization": f"Bearer {api_key}"}
        return httpx.get(f"{server.base_url}/api/whatsapp/broadcasts", headers=headers).status_code

    rotated = _json("tenant", "rotate-key", str(server.tenant_id), env=server.env)
    assert isinstance(rotated, dict)
    assert (status(server.api_key), status(str(rotated["api_key"]))) == (200, 200)

    again = _json("tenant", "rotate-key", str(server.tenant_id), "--grace", "0", env=server.env)
    assert isinstance(again, dict)
    assert status(server.api_key) == 401
    assert status(str(rotated["api_key"])) == 401
    assert status(str(again["api_key"])) == 200
