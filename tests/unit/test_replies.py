"""The pure rules of replies: the reply window's setting, the kept text, the rate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wabroadcast.config import Settings
from wabroadcast.domain.replies import (
    REPLY_TEXT_CHARS,
    parse_duration_hours,
    reply_excerpt,
    reply_rate,
)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("72", 259_200.0),
        ("72h", 259_200.0),
        (" 72 H ", 259_200.0),
        ("1.5h", 5_400.0),
        ("90m", 5_400.0),
        ("3d", 259_200.0),
        ("3600s", 3_600.0),
        (7200, 7200),
        ("soon", "soon"),
        ("-2h", "-2h"),
    ],
)
def test_a_duration_is_read_in_hours_unless_it_names_its_unit(
    given: object, seconds: object
) -> None:
    assert parse_duration_hours(given) == seconds


def test_the_reply_window_comes_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().reply_window_s == 72 * 3600
    monkeypatch.setenv("WABROADCAST_REPLY_WINDOW", "24h")
    assert Settings().reply_window_s == 24 * 3600
    monkeypatch.setenv("WABROADCAST_REPLY_WINDOW", "soon")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("WABROADCAST_REPLY_WINDOW", "0")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (None, None),
        ("", ""),
        ("Yes", "Yes"),
        ("x" * (REPLY_TEXT_CHARS + 1), "x" * REPLY_TEXT_CHARS),
    ],
)
def test_a_reply_keeps_its_first_thousand_characters(text: str | None, kept: str | None) -> None:
    assert reply_excerpt(text) == kept


@pytest.mark.parametrize(
    ("replies", "sent", "rate"),
    [(0, 0, None), (0, 5, 0.0), (1, 3, 33.3), (2, 3, 66.7), (3, 3, 100.0)],
)
def test_the_reply_rate_is_a_percent_of_the_sent(
    replies: int, sent: int, rate: float | None
) -> None:
    assert reply_rate(replies, sent) == rate
