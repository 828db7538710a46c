"""The simulator's error table, its deterministic failure draw, and CSV recipients."""

from __future__ import annotations

from pathlib import Path

from wabroadcast.client import read_csv_recipients
from wabroadcast.providers.base import SendOutcome
from wabroadcast.providers.simulator.rules import ERRORS, classify, fails_by_rate


def test_every_code_has_a_treatment_and_a_human_message() -> None:
    assert classify("NOT_ON_WHATSAPP")[0] is SendOutcome.FAILED
    assert classify("SERVER_ERROR")[0] is SendOutcome.RETRY_LATER
    assert classify("RATE_LIMITED")[0] is SendOutcome.RETRY_LATER
    assert classify("SESSION_DISCONNECTED")[0] is SendOutcome.DISCONNECTED
    assert classify("SPAM_FLAGGED")[0] is SendOutcome.ACCOUNT_BLOCKED
    assert classify("SOMETHING_NEW") == (
        SendOutcome.FAILED,
        "WhatsApp refused the message (SOMETHING_NEW).",
    )
    assert all(message.endswith(".") and len(message) > 10 for _, message in ERRORS.values())


def test_the_failure_draw_is_deterministic_and_close_to_the_rate() -> None:
    ids = [f"wab-{i}-1" for i in range(20_000)]
    first = [fails_by_rate(i, 0.1) for i in ids]
    assert first == [fails_by_rate(i, 0.1) for i in ids]
    assert 0.09 < sum(first) / len(ids) < 0.11
    assert not any(fails_by_rate(i, 0.0) for i in ids[:100])
    assert all(fails_by_rate(i, 1.0) for i in ids[:100])
    # A retry gets a new message id, so its draw is independent of the first attempt's.
    assert [fails_by_rate(f"wab-{i}-2", 0.1) for i in range(50)] != first[:50]


def test_csv_with_a_header_or_bare_phones(tmp_path: Path) -> None:
    with_header = tmp_path / "a.csv"
    with_header.write_text("Name,Phone,Lead_ID\nNoa,052-345-6789,7\nDan,,8\nEli,0501234567,x\n")
    assert read_csv_recipients(with_header) == [
        {"phone": "052-345-6789", "lead_id": 7, "name": "Noa"},
        {"phone": "0501234567", "name": "Eli"},
    ]
    bare = tmp_path / "b.csv"
    bare.write_text("0502345678\n\n+972 52 345 6789,ignored\n")
    assert read_csv_recipients(bare) == [
        {"phone": "0502345678"},
        {"phone": "+972 52 345 6789", "variables": {"column_2": "ignored"}},
    ]
    empty = tmp_path / "c.csv"
    empty.write_text("")
    assert read_csv_recipients(empty) == []
