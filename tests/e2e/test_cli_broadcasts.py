"""``wabroadcast broadcasts ...`` and ``send --wait`` exit codes against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Server, cli


def run(server: Server, *args: str) -> tuple[int, str, str]:
    result = cli(
        *args,
        "--url",
        server.base_url,
        env={**server.env, "WABROADCAST_API_KEY": server.api_key, "COLUMNS": "200"},
    )
    return result.returncode, result.stdout, result.stderr


def documents(text: str) -> list[Any]:
    """Every JSON document printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


def test_pause_show_list_resume_cancel_from_the_cli(server: Server) -> None:
    # One message every 5 s: the broadcast is still sending when it is paused (and a slot
    # waiting for its turn does not hold the server's shutdown for long).
    tuned = cli("session", "set", server.session_id, "--rate-per-minute", "12", env=server.env)
    assert tuned.returncode == 0, tuned.stderr
    numbers = [f"05023456{i:02d}" for i in range(10)]
    code, out, err = run(
        server, "send", "--json", "--message", "Slow", *(a for n in numbers for a in ("--to", n))
    )
    assert code == 0, err
    broadcast_id = documents(out)[0]["broadcast_id"]
    code, out, err = run(server, "broadcasts", "show", str(broadcast_id))
    assert code == 0, err
    assert out.splitlines()[1].startswith("sending · estimated finish "), out

    code, out, err = run(server, "broadcasts", "pause", str(broadcast_id))
    assert code == 0, err
    assert out.startswith(f"broadcast {broadcast_id}: paused (")
    assert "Paused by hand" in out
    code, out, err = run(server, "broadcasts", "show", str(broadcast_id))
    assert (code, out.splitlines()[1]) == (0, "waiting: paused"), err
    code, out, _ = run(server, "broadcasts", "show", str(broadcast_id), "--json")
    assert (code, json.loads(out)["status"]) == (0, "paused")
    code, out, _ = run(server, "broadcasts", "list", "--status", "paused")
    assert code == 0
    assert f"broadcast {broadcast_id}: paused" in out
    code, out, _ = run(server, "broadcasts", "list", "--json")
    assert [b["broadcast_id"] for b in json.loads(out)["items"]] == [broadcast_id]

    code, out, err = run(server, "broadcasts", "resume", str(broadcast_id), "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "running"
    code, out, err = run(server, "broadcasts", "cancel", str(broadcast_id))
    assert code == 0, err
    assert out.startswith(f"broadcast {broadcast_id}: cancelled (")

    # Errors: one line on stderr, exit code 1.
    for action in ("pause", "retry-failed"):
        code, out, err = run(server, "broadcasts", action, str(broadcast_id))
        assert code == 1, out
        assert err.startswith("error: 409 BROADCAST_FINISHED: "), err
        assert err.count("\n") == 1
    code, _, err = run(server, "broadcasts", "show", "999999")
    assert (code, err.startswith("error: 404 BROADCAST_NOT_FOUND")) == (1, True), err


def test_send_wait_exits_3_when_not_all_sent_and_retry_failed_skips_final_failures(
    server: Server,
) -> None:
    tuned = cli("session", "set", server.session_id, "--rate-per-minute", "0", env=server.env)
    assert tuned.returncode == 0, tuned.stderr
    httpx.put(
        f"{server.base_url}/api/whatsapp/simulator",
        json={"fail_numbers": {"+972523456789": "NOT_ON_WHATSAPP"}},
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    code, out, err = run(
        server,
        "send",
        "--json",
        "--wait",
        "--message",
        "Partly",
        "--to",
        "0502345678",
        "--to",
        "0523456789",
    )
    assert code == 3, out + err
    proof, final = documents(out)
    assert [item["phone"] for item in proof["items"]] == ["+972502345678", "+972523456789"]
    assert (final["status"], final["sent_count"], final["failed_count"]) == ("partial", 1, 1)
    broadcast_id = proof["broadcast_id"]

    code, out, err = run(server, "broadcasts", "show", str(broadcast_id))
    assert code == 0, err
    assert out.startswith(f"broadcast {broadcast_id}: partial (sent 1, ")
    assert "NOT_ON_WHATSAPP" in out
    code, out, err = run(server, "broadcasts", "retry-failed", str(broadcast_id), "--json")
    assert (code, json.loads(out)) == (0, {"requeued": 0}), err
    code, out, err = run(
        server, "broadcasts", "retry-failed", str(broadcast_id), "--code", "NOT_ON_WHATSAPP"
    )
    assert (code, out.strip()) == (0, f"broadcast {broadcast_id}: 0 failed recipients queued again")

    no_key = cli("broadcasts", "list", "--url", server.base_url, env=server.env)
    assert no_key.returncode != 0
    assert "WABROADCAST_API_KEY" in no_key.stderr


def test_send_csv_personal_message_shows_each_text_and_strict_refuses(
    server: Server, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text("Name,Phone Number,City\nDana,050-234-5678,Haifa\nNoa,052-345-6789,\n")
    message = "Hi {{name}}, see you in {{City}}"
    code, out, err = run(
        server, "send", "--message", message, "--csv", str(people), "--strict-variables"
    )
    assert code == 1, out
    assert err.startswith("error: 422 MISSING_VARIABLES: "), err
    assert err.count("\n") == 1

    code, out, err = run(server, "send", "--message", message, "--csv", str(people))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith(": 2 queued, 0 invalid, 0 duplicates removed"), out
    assert "  +972502345678: queued 'Hi Dana, see you in Haifa'" in lines
    assert "  +972523456789: queued 'Hi Noa, see you in '" in lines
    assert "  missing City: 1 recipient gets it empty (+972523456789)" in lines

    # One recipient's own text shows too; a plain message's items show none.
    code, out, err = run(server, "send", "--message", "Bye {{name}}", "--to", "0533456789")
    assert (code, out.splitlines()[1]) == (0, "  +972533456789: queued 'Bye '"), err
    code, out, err = run(server, "send", "--message", "Plain", "--to", "0543456789")
    assert (code, out.splitlines()[1]) == (0, "  +972543456789: queued"), err
