"""``wabroadcast tenant set`` as a person uses it: values stored and printed as JSON, a
bad zone or window refused in one line, ``off`` clearing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import cli


def test_tenant_set_stores_checks_and_clears(tmp_path: Path) -> None:
    env = {"WABROADCAST_DATABASE_URL": f"sqlite:///{tmp_path / 'settings.db'}"}
    created = cli("tenant", "create", "--name", "Shop", env=env)
    assert created.returncode == 0, created.stderr
    tenant_id = str(json.loads(created.stdout)["tenant_id"])

    changed = cli(
        "tenant",
        "set",
        tenant_id,
        "--time-zone",
        "Asia/Jerusalem",
        "--quiet-hours",
        "21:00-08:30",
        "--opt-out-reply",
        "Removed. Sorry!",
        env=env,
    )
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "tenant_id": int(tenant_id),
        "time_zone": "Asia/Jerusalem",
        "quiet_hours": "21:00-08:30",
        "opt_out_reply": "Removed. Sorry!",
    }

    refused = cli("tenant", "set", tenant_id, "--quiet-hours", "08:00-08:00", env=env)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error: quiet_hours: start and end must differ")
    assert len(refused.stderr.strip().splitlines()) == 1

    cleared = cli(
        "tenant", "set", tenant_id, "--quiet-hours", "off", "--opt-out-reply", "off", env=env
    )
    assert cleared.returncode == 0, cleared.stderr
    shown = json.loads(cleared.stdout)
    assert (shown["time_zone"], shown["quiet_hours"], shown["opt_out_reply"]) == (
        "Asia/Jerusalem",
        None,
        None,
    )
