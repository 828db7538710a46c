"""Preparing the recipient list: normalization, dedupe, chunks, echo limits."""

from __future__ import annotations

from wabroadcast.domain.recipients import (
    RecipientInput,
    RecipientPreparer,
    echo_input,
    prepare_recipients,
)


def test_keeps_first_occurrence_and_counts_duplicates() -> None:
    preparer, valid = prepare_recipients(
        [
            RecipientInput("0502345678", lead_id=1, name="first"),
            RecipientInput("+972502345678", lead_id=2, name="second"),
            "0523456789",
            "12",
        ],
        "IL",
    )
    assert [(r.phone, r.lead_id, r.name, r.raw_input) for r in valid] == [
        ("+972502345678", 1, "first", "0502345678"),
        ("+972523456789", None, None, "0523456789"),
    ]
    assert preparer.duplicates_removed == 1
    assert [(r.input, r.reason) for r in preparer.invalid] == [("12", "too_short")]
    assert preparer.reason_counts() == {"too_short": 1}
    assert preparer.valid_count == 2
    assert preparer.sorted_phones() == ["+972502345678", "+972523456789"]


def test_chunks_dedupe_across_each_other_and_keep_the_first_hundred() -> None:
    preparer = RecipientPreparer("IL")
    first = preparer.add([f"05000{i:05d}" for i in range(80)])
    second = preparer.add([f"05000{i:05d}" for i in range(40, 140)])
    assert len(first) == 80
    assert [r.phone for r in second] == [f"+9725000{i:05d}" for i in range(80, 140)]
    assert preparer.duplicates_removed == 40
    assert preparer.valid_count == 140
    assert [r.phone for r in preparer.first_valid] == [f"+9725000{i:05d}" for i in range(100)]


def test_long_inputs_are_echoed_truncated() -> None:
    echoed = echo_input("x" * 500)
    assert len(echoed) == 64
    assert echoed.endswith("…")
    assert echo_input("short") == "short"
    preparer, _ = prepare_recipients(["9" * 100], "IL")
    assert preparer.invalid[0].input == echo_input("9" * 100)
