"""The product as a user meets it: the CLI, a real server, the OpenAPI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, cli


def test_db_upgrade_and_tenant_create_print_what_the_docs_say(tmp_path: Path) -> None:
    env = {"WABROADCAST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at revision" in upgraded.stdout
    created = cli("tenant", "create", "--name", "Shop", "--region", "us", env=env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert set(tenant) == {"tenant_id", "api_key", "session_id"}
    assert tenant["session_id"] == f"business_{tenant['tenant_id']}"
    assert tenant["api_key"].startswith("wab_")
    second = json.loads(cli("tenant", "create", "--name", "Other", env=env).stdout)
    assert second["tenant_id"] == tenant["tenant_id"] + 1
    assert second["api_key"] != tenant["api_key"]


def test_tenant_create_refuses_an_unknown_region(tmp_path: Path) -> None:
    env = {"WABROADCAST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    result = cli("tenant", "create", "--name", "Shop", "--region", "XX", env=env)
    assert result.returncode != 0
    assert "region" in (result.stderr + result.stdout)


def test_a_broadcast_over_real_http(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"message": "Hello", "recipients": ["050-234-5678", "+972 52 345 6789", "123"]}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        created = client.post("/api/whatsapp/broadcasts", json=body)
        assert created.status_code == 202
        proof = created.json()
        assert (proof["queued_count"], proof["invalid_recipients_count"]) == (2, 1)
        fetched = client.get(f"/api/whatsapp/broadcasts/{proof['broadcast_id']}").json()
        # The server's embedded worker may already be sending it.
        assert fetched["status"] in {"queued", "running", "completed"}
        assert client.post("/api/whatsapp/broadcasts", json=body).json()["idempotent"] is True
        status = client.get("/api/whatsapp/status").json()
        assert status["session_id"] == server.session_id
        assert status["state"] == "connected"


def test_openapi_describes_every_route_and_its_errors(server: Server) -> None:
    schema = httpx.get(f"{server.base_url}/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {
        "/api/whatsapp/broadcasts",
        "/api/whatsapp/broadcasts/{broadcast_id}",
        "/api/whatsapp/broadcasts/{broadcast_id}/recipients",
        "/api/whatsapp/broadcasts/{broadcast_id}/cancel",
        "/api/whatsapp/broadcasts/{broadcast_id}/resume",
        "/api/whatsapp/broadcasts/{broadcast_id}/pause",
        "/api/whatsapp/broadcasts/{broadcast_id}/retry-failed",
        "/api/whatsapp/status",
        "/api/whatsapp/sessions",
        "/api/whatsapp/sessions/{session_id}",
        "/api/whatsapp/sessions/{session_id}/status",
        "/api/whatsapp/sessions/{session_id}/connect",
        "/api/whatsapp/sessions/{session_id}/link",
        "/api/whatsapp/sessions/{session_id}/logout",
        "/api/whatsapp/simulator",
        "/api/whatsapp/simulator/sends",
        "/api/whatsapp/simulator/inbound",
        "/api/whatsapp/opt-outs",
        "/api/whatsapp/opt-outs/{phone}",
        "/api/whatsapp/settings",
        "/api/whatsapp/stop-words",
        "/api/whatsapp/webhooks/{provider}",
        "/api/whatsapp/webhooks/{provider}/{key}",
        "/api/whatsapp/webhook-subscriptions",
        "/api/whatsapp/webhook-subscriptions/{subscription_id}",
        "/api/whatsapp/webhook-subscriptions/{subscription_id}/deliveries",
        "/api/whatsapp/metrics",
        "/healthz",
        "/readyz",
    }
    create = paths["/api/whatsapp/broadcasts"]["post"]
    assert {"200", "202", "400", "401", "404", "409", "413", "422", "503"} <= set(
        create["responses"]
    )
    assert create["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorEnvelope"
    )
    public = {
        "/api/whatsapp/webhooks/{provider}",
        "/api/whatsapp/webhooks/{provider}/{key}",
        "/healthz",
        "/readyz",
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path not in public:
                assert operation["security"] == [{"HTTPBearer": []}], (method, path)
                assert "401" in operation["responses"], (method, path)
            if "parameters" in operation or "requestBody" in operation:
                assert "422" in operation["responses"], (method, path)
    assert "503" in paths["/readyz"]["get"]["responses"]


@pytest.mark.slow
def test_schemathesis_finds_no_contract_violation(server: Server, tmp_path: Path) -> None:
    """Property-based requests from the OpenAPI document: no 500s, no undocumented answers.

    ``positive_data_acceptance`` is left out on purpose: the API refuses some
    schema-valid bodies by business rule (an empty or all-invalid recipient
    list is a 400 by contract), which that check would count as failures.
    """
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{server.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {server.api_key}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "15",
            "--generation-deterministic",
            "--workers",
            "1",
            "--no-color",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:]


def test_session_set_and_send_wait_follow_a_broadcast_to_its_end(
    server: Server, tmp_path: Path
) -> None:
    tuned = cli(
        "session",
        "set",
        server.session_id,
        "--rate-per-minute",
        "0",
        "--max-concurrency",
        "2",
        env=server.env,
    )
    assert tuned.returncode == 0, tuned.stderr
    tuned_session = json.loads(tuned.stdout)
    assert {k: tuned_session[k] for k in ("session_id", "provider", "max_concurrency")} == {
        "session_id": server.session_id,
        "provider": "simulator",
        "max_concurrency": 2,
    }
    # The pace shown is the one in force: rate set, jitter still the provider's default.
    assert (tuned_session["rate_per_minute"], tuned_session["pace_is_default"]) == (0.0, False)
    status = httpx.get(
        f"{server.base_url}/api/whatsapp/status",
        headers={"Authorization": f"Bearer {server.api_key}"},
    ).json()
    assert (status["max_concurrency"], status["rate_per_minute"]) == (2, 0.0)
    httpx.put(
        f"{server.base_url}/api/whatsapp/simulator",
        json={"fail_numbers": {"+972523456789": "NOT_ON_WHATSAPP"}},
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    contacts = tmp_path / "contacts.csv"
    # Semicolons and Hebrew headers, as a spreadsheet in Hebrew saves them.
    contacts.write_text("שם;טלפון נייד;lead_id\nNoa;052-345-6789;7\nDan;053-456-7890;8\n")
    sent = cli(
        "send",
        "--url",
        server.base_url,
        "--api-key",
        server.api_key,
        "--message",
        "From the CLI",
        "--to",
        "0502345678",
        "--csv",
        str(contacts),
        "--wait",
        env={**server.env, "COLUMNS": "120"},
    )
    # Partial: exit code 3, after the compact proof and the summary.
    assert sent.returncode == 3, sent.stdout + sent.stderr
    assert "3 queued, 0 invalid, 0 duplicates removed" in sent.stdout
    assert "+972523456789 lead 7: queued" in sent.stdout
    assert "partial" in sent.stdout
    assert "NOT_ON_WHATSAPP" in sent.stdout
    assert "This number is not on WhatsApp." in sent.stdout


def test_send_wait_stops_at_a_pause_and_says_why(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    httpx.put(
        f"{server.base_url}/api/whatsapp/simulator",
        json={"fail_numbers": {"+972524567890": "SPAM_FLAGGED"}},
        headers=headers,
    )
    sent = cli(
        "send",
        "--url",
        server.base_url,
        "--api-key",
        server.api_key,
        "--message",
        "Flagged",
        "--to",
        "0524567890",
        "--wait",
        env={**server.env, "COLUMNS": "200"},
    )
    httpx.put(
        f"{server.base_url}/api/whatsapp/simulator", json={"fail_numbers": {}}, headers=headers
    )
    assert sent.returncode == 2, sent.stdout + sent.stderr
    assert ": paused" in sent.stdout
    assert "Paused: WhatsApp flagged this account for spam" in sent.stdout
    assert "/resume" in sent.stdout


def test_send_reports_api_errors_and_exits_non_zero(server: Server) -> None:
    result = cli(
        "send",
        "--url",
        server.base_url,
        "--api-key",
        server.api_key,
        "--message",
        "x",
        "--to",
        "12",
        env={**server.env, "COLUMNS": "200"},
    )
    assert result.returncode == 1
    assert "NO_VALID_RECIPIENTS" in result.stderr
    wrong_key = cli(
        "send",
        "--url",
        server.base_url,
        "--api-key",
        "wab_nope",
        "--message",
        "x",
        "--to",
        "0502345678",
        env={**server.env, "COLUMNS": "200"},
    )
    assert wrong_key.returncode == 1
    assert "UNAUTHORIZED" in wrong_key.stderr
