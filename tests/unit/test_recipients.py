"""Preparing the recipient list: normalization, dedupe, echo limits."""

from __future__ import annotations

from wabroadcast.domain.recipients import RecipientInput, echo_input, prepare_recipients


def test_keeps_first_occurrence_and_counts_duplicates() -> None:
    prepared = prepare_recipients(
        [
            RecipientInput("0502345678", lead_id=1, name="first"),
            RecipientInput("+972502345678", lead_id=2, name="second"),
            RecipientInput("0523456789"),
            RecipientInput("12"),
        ],
        "IL",
    )
    assert [(r.phone, r.lead_id, r.name, r.raw_input) for r in prepared.valid] == [
        ("+972502345678", 1, "first", "0502345678"),
        ("+972523456789", None, None, "0523456789"),
    ]
    assert prepared.duplicates_removed == 1
    assert [(r.input, r.reason) for r in prepared.invalid] == [("12", "too_short")]
    assert prepared.reason_counts() == {"too_short": 1}


def test_long_inputs_are_echoed_truncated() -> None:
    echoed = echo_input("x" * 500)
    assert len(echoed) == 64
    assert echoed.endswith("…")
    assert echo_input("short") == "short"
