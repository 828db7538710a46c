"""Opt-outs' pure rules: which texts are stop words, how numbers to opt out are read, how
the preparer leaves opted-out numbers out, and how skipped recipients settle a broadcast."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wabroadcast.domain.opt_outs import (
    DEFAULT_STOP_WORDS,
    is_stop_word,
    normalize_phone_list,
    stop_word_key,
    stop_word_keys,
)
from wabroadcast.domain.recipients import OPTED_OUT_KEPT, RecipientPreparer, prepare_recipients
from wabroadcast.domain.status import BroadcastStatus, final_broadcast_status
from wabroadcast.domain.templating import compiled

DEFAULTS = stop_word_keys(None)


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "S T O P",
        "Stop!",
        "stop.",
        "UNSUBSCRIBE",
        "Unsubscribe",
        "הסר",
        " הסר ",
        "הסרה",
        "עצור",
        "עצור!",
        "\u200fהסר\u200f",  # the right-to-left marks a Hebrew keyboard adds
        "הָסֵר",  # with vowel points
        "ＳＴＯＰ",  # full-width letters
        "stop\n",
    ],
)
def test_default_stop_words_match_in_any_case_and_spacing(text: str) -> None:
    assert is_stop_word(text, DEFAULTS)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "please stop",
        "stop it",
        "STOPP",
        "don't stop",
        "הסרתי",
        "תודה",
        "?",
        "stop" * 100,
    ],
)
def test_other_texts_are_not_stop_words(text: str | None) -> None:
    assert not is_stop_word(text, DEFAULTS)


def test_a_tenants_own_words_replace_the_defaults() -> None:
    keys = stop_word_keys(["בטל", "Cancel me"])
    assert is_stop_word("CANCEL ME", keys)
    assert is_stop_word("בטל", keys)
    assert not is_stop_word("STOP", keys)
    assert stop_word_keys([]) == frozenset()
    assert stop_word_keys(["!!", " "]) == frozenset()


def test_defaults_are_the_documented_five() -> None:
    assert DEFAULT_STOP_WORDS == ("STOP", "UNSUBSCRIBE", "הסר", "הסרה", "עצור")
    assert {stop_word_key(w) for w in DEFAULT_STOP_WORDS} == DEFAULTS


@given(st.text(max_size=30))
def test_matching_is_exactly_key_equality(text: str) -> None:
    assert is_stop_word(text, DEFAULTS) is (bool(text) and stop_word_key(text) in DEFAULTS)


def test_numbers_to_opt_out_are_read_like_recipients() -> None:
    listed = normalize_phone_list(
        ["050-234-5678", "+972 50 234 5678", "00972523456789", "hello", "12", "0523456789"], "IL"
    )
    assert listed.phones == ["+972502345678", "+972523456789"]
    assert [(r.input, r.reason) for r in listed.invalid] == [
        ("hello", "invalid_format"),
        ("12", "too_short"),
    ]


def test_the_preparer_leaves_opted_out_numbers_out_and_counts_them() -> None:
    opted = frozenset({"+972502345678", "+972533456789"})
    preparer, valid = prepare_recipients(
        ["050-234-5678", "0523456789", "+972502345678", "053-345-6789", "x"], "IL", opted_out=opted
    )
    assert [r.phone for r in valid] == ["+972523456789"]
    assert (preparer.valid_count, preparer.opted_out_count) == (1, 2)
    assert preparer.first_opted_out == ["+972502345678", "+972533456789"]
    assert preparer.duplicates_removed == 1
    assert len(preparer.invalid) == 1
    assert [r.phone for r in preparer.first_valid] == ["+972523456789"]
    # What the client posted (its content twin) still counts every number.
    assert preparer.sorted_phones() == ["+972502345678", "+972523456789", "+972533456789"]


def test_opt_outs_known_after_preparing_give_the_same_answer() -> None:
    items = [f"+97250{n:07d}" for n in range(50)]
    opted = frozenset(items[::3])
    at_once, valid_at_once = prepare_recipients(items, "IL", opted_out=opted)
    later, valid = prepare_recipients(items, "IL")
    valid = later.apply_opt_outs(valid, opted)
    assert valid == valid_at_once
    assert (later.valid_count, later.opted_out_count, later.first_opted_out) == (
        at_once.valid_count,
        at_once.opted_out_count,
        at_once.first_opted_out,
    )
    assert later.first_valid == at_once.first_valid
    assert len(later.first_opted_out) == 17  # every third of 50
    assert later.sorted_phones() == at_once.sorted_phones()


def test_chunks_filter_each_and_keep_only_the_first_twenty_listed() -> None:
    items = [f"+97250{n:07d}" for n in range(100)]
    preparer = RecipientPreparer("IL", opted_out=frozenset(items[:60]))
    kept = preparer.add(items[:50]) + preparer.add(items[50:])
    assert [r.phone for r in kept] == items[60:]
    assert (preparer.valid_count, preparer.opted_out_count) == (40, 60)
    assert preparer.first_opted_out == items[:OPTED_OUT_KEPT]


def test_personal_texts_are_rendered_for_the_fingerprint_but_not_queued() -> None:
    template = compiled("Hi {{name}}")
    opted = frozenset({"+972502345678"})
    preparer = RecipientPreparer("IL", template, opted_out=opted)
    kept = preparer.add(["0502345678", "0523456789"])
    assert [(r.phone, r.message) for r in kept] == [("+972523456789", "Hi ")]
    assert [phone for phone, _ in preparer.sorted_texts()] == ["+972502345678", "+972523456789"]


@pytest.mark.parametrize(
    ("sent", "failed", "skipped", "expected"),
    [
        (2, 0, 1, BroadcastStatus.COMPLETED),
        (0, 0, 3, BroadcastStatus.COMPLETED),
        (1, 1, 1, BroadcastStatus.PARTIAL),
        (0, 2, 1, BroadcastStatus.FAILED),
        (0, 0, 0, BroadcastStatus.FAILED),
    ],
)
def test_skipped_recipients_were_left_out_on_purpose(
    sent: int, failed: int, skipped: int, expected: BroadcastStatus
) -> None:
    assert final_broadcast_status(sent, failed, skipped) is expected
