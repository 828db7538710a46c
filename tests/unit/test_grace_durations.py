"""``tenant rotate-key --grace``: the duration forms it takes, row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest
import typer

from wabroadcast.cli_tenants import parse_duration


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        (" 2H ", timedelta(hours=2)),
        ("365d", timedelta(days=365)),
    ],
)
def test_accepted_forms(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize("text", ["", "24", "1.5h", "-1h", "2w", "h", "1 h", "10000000s"])
def test_other_forms_are_a_usage_error_naming_the_accepted_ones(text: str) -> None:
    with pytest.raises(typer.BadParameter, match=r"use 0, or a whole number of s, m, h or d"):
        parse_duration(text)


def test_a_grace_longer_than_a_year_is_refused() -> None:
    with pytest.raises(typer.BadParameter, match="365d"):
        parse_duration("366d")
