"""The dashboard's pure parts: its two languages, the chart geometry, the form's parsing."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import Headers
from starlette.requests import Request

from wabroadcast.domain.csv_import import import_csv
from wabroadcast.metrics.schemas import MinuteCount
from wabroadcast.texts import EN, HE, Translator
from wabroadcast.web.chart import BOTTOM, TOP, minute_chart, nice_ceiling
from wabroadcast.web.forms import Draft, split_pasted
from wabroadcast.web.i18n import language_of
from wabroadcast.web.rendering import safe_next, url


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_hebrew_and_english_have_the_same_texts_and_placeholders() -> None:
    assert set(HE) == set(EN)
    for key, english in EN.items():
        assert _placeholders(HE[key]) == _placeholders(english), key
        assert HE[key].strip(), key


def test_translator_fills_placeholders_and_knows_its_direction() -> None:
    assert Translator("en")("detail.title", id=7) == "Broadcast #7"
    assert Translator("he")("detail.title", id=7) == "תפוצה #7"
    assert Translator("he").direction == "rtl"
    assert Translator("en").direction == "ltr"
    assert Translator("en").or_raw("reason.", "too_short") == "too short (under 9 digits)"
    assert Translator("en").or_raw("reason.", "brand_new_reason") == "brand_new_reason"


def _request(headers: dict[str, str]) -> Request:
    raw = Headers(headers).raw
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "en"),
        ({"accept-language": "he-IL,he;q=0.9,en;q=0.8"}, "he"),
        ({"accept-language": "iw"}, "he"),
        ({"accept-language": "en-US,he;q=0.5"}, "en"),
        ({"accept-language": "he", "cookie": "wab_lang=en"}, "en"),
        ({"cookie": "wab_lang=he"}, "he"),
        ({"cookie": "wab_lang=fr"}, "en"),
    ],
)
def test_language_is_the_chosen_one_else_the_browsers_first(
    headers: dict[str, str], expected: str
) -> None:
    assert language_of(_request(headers)) == expected


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/broadcasts/3?status=failed") == "/broadcasts/3?status=failed"
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/"


def test_url_leaves_out_empty_parameters() -> None:
    assert url("/", status="", cursor=None) == "/"
    assert url("/b/1", status="failed", cursor="aWQ6NTA") == "/b/1?status=failed&cursor=aWQ6NTA"


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 2, 3, 6, 11, 49, 51, 999)] == [
        1,
        1,
        2,
        5,
        10,
        20,
        50,
        100,
        1000,
    ]


def _Minute(minute: datetime, sent: int, failed: int) -> MinuteCount:
    return MinuteCount(minute=minute, sent=sent, failed=failed)


def test_chart_stacks_failed_on_sent_within_the_plot() -> None:
    start = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    series = [_Minute(start + timedelta(minutes=i), 0, 0) for i in range(60)]
    series[-1] = _Minute(series[-1].minute, 6, 4)
    series[0] = _Minute(series[0].minute, 1, 0)
    chart = minute_chart(series)
    assert chart.scale_max == 10
    assert (chart.total_sent, chart.total_failed) == (7, 4)
    last = chart.bars[-1]
    usable = BOTTOM - TOP
    assert last.sent_height == pytest.approx(usable * 0.6)
    assert last.failed_height == pytest.approx(usable * 0.4)
    assert last.failed_y == pytest.approx(TOP)
    assert last.sent_y + last.sent_height == pytest.approx(BOTTOM)
    assert all(b.x >= 0 and b.x + b.width <= chart.width for b in chart.bars)
    assert [t.minutes_ago for t in chart.ticks] == [45, 30, 15, 0]


def test_an_empty_chart_still_has_a_scale() -> None:
    chart = minute_chart([])
    assert (chart.scale_max, chart.bars, chart.total_sent) == (1, [], 0)


def test_pasted_numbers_split_on_lines_commas_and_semicolons() -> None:
    assert split_pasted("050-234-5678\r\n+972 52 345 6789, 0533456789;; \n\n 123 ") == [
        "050-234-5678",
        "+972 52 345 6789",
        "0533456789",
        "123",
    ]


def test_a_draft_lists_pasted_numbers_then_csv_rows() -> None:
    rows = import_csv("\ufeffname,phone,lead_id\r\nNoa,052-345-6789,7\r\nDan,,8\r\n", "IL").rows
    draft = Draft(message="hi", pasted="0502345678", csv_rows=rows)
    assert [tuple(r) for r in draft.recipient_inputs()] == [
        ("0502345678", None, None, None),
        ("052-345-6789", 7, "Noa", None),
    ]
