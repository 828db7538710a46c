"""Meta's error codes, row by row: what the dispatcher does with each and what it shows."""

from __future__ import annotations

import pytest

from wabroadcast.providers.base import SendOutcome, SendResult
from wabroadcast.providers.cloud_api.errors import (
    MAX_META_TEXT,
    META_ERRORS,
    classify_code,
    classify_error,
    classify_status_error,
)


def envelope(code: object, message: str = "(#0) Something", details: str | None = None) -> object:
    """A Graph API error body, as Meta answers a refused send."""
    error: dict[str, object] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbC123",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


EXPECTED_OUTCOMES = {
    130429: SendOutcome.RETRY_LATER,
    131056: SendOutcome.RETRY_LATER,
    80007: SendOutcome.RETRY_LATER,
    131000: SendOutcome.RETRY_LATER,
    131016: SendOutcome.RETRY_LATER,
    133004: SendOutcome.RETRY_LATER,
    131026: SendOutcome.FAILED,
    131047: SendOutcome.FAILED,
    131051: SendOutcome.FAILED,
    100: SendOutcome.FAILED,
    131049: SendOutcome.FAILED,
    131050: SendOutcome.FAILED,
    131048: SendOutcome.ACCOUNT_BLOCKED,
    368: SendOutcome.ACCOUNT_BLOCKED,
    131031: SendOutcome.ACCOUNT_BLOCKED,
    190: SendOutcome.DISCONNECTED,
}


def test_the_table_has_exactly_the_expected_rows() -> None:
    assert {code: outcome for code, (outcome, _) in META_ERRORS.items()} == EXPECTED_OUTCOMES


@pytest.mark.parametrize(("code", "outcome"), sorted(EXPECTED_OUTCOMES.items()))
def test_each_code_is_treated_as_its_row_says(code: int, outcome: SendOutcome) -> None:
    result = classify_error(400, envelope(code, f"(#{code}) Meta's title"))
    assert result.outcome is outcome
    assert result.error_code == f"META_{code}"
    assert result.provider_message_id is None
    guidance = META_ERRORS[code][1]
    assert result.error_message == f"(#{code}) Meta's title. {guidance}"
    # One sentence of ours, ending with a full stop.
    assert guidance.endswith(".")
    assert guidance.count(". ") == 0


@pytest.mark.parametrize("code", [132000, 132001, 132012, 132015, 132999])
def test_every_template_error_fails_the_recipient(code: int) -> None:
    result = classify_error(400, envelope(code, "(#132001) Template name does not exist"))
    assert result.outcome is SendOutcome.FAILED
    assert result.error_code == f"META_{code}"
    assert result.error_message is not None
    assert result.error_message.startswith("(#132001) Template name does not exist. ")
    assert "template" in result.error_message.lower()


@pytest.mark.parametrize("code", [131999, 133000])
def test_the_template_range_ends_where_it_should(code: int) -> None:
    assert classify_code(code) is None


def test_re_engagement_says_a_template_is_required() -> None:
    result = classify_error(400, envelope(131047, "(#131047) Re-engagement message"))
    assert result.outcome is SendOutcome.FAILED
    assert result.error_message is not None
    assert "template is required" in result.error_message
    assert '"template"' in result.error_message


def test_meta_details_are_preferred_to_the_message() -> None:
    result = classify_error(
        400, envelope(131026, "(#131026) Message undeliverable", "Message Undeliverable.")
    )
    assert result == SendResult(
        SendOutcome.FAILED,
        error_code="META_131026",
        error_message=f"Message Undeliverable. {META_ERRORS[131026][1]}",
    )


def test_an_expired_token_disconnects_the_session() -> None:
    body = envelope(190, "Error validating access token: Session has expired")
    result = classify_error(401, body)
    assert result.outcome is SendOutcome.DISCONNECTED
    assert result.error_code == "META_190"
    assert result.error_message is not None
    assert result.error_message.startswith("Error validating access token: Session has expired. ")


def test_code_190_disconnects_even_without_a_401() -> None:
    assert classify_error(400, envelope(190)).outcome is SendOutcome.DISCONNECTED


@pytest.mark.parametrize("body", [envelope(100), envelope(131026), None, {"unexpected": True}])
def test_any_http_401_disconnects_whatever_the_code(body: object) -> None:
    result = classify_error(401, body)
    assert result.outcome is SendOutcome.DISCONNECTED
    assert result.error_code == "META_401"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_without_a_code_is_retried(status: int) -> None:
    result = classify_error(status, None)
    assert result.outcome is SendOutcome.RETRY_LATER
    assert result.error_code == f"META_HTTP_{status}"
    assert result.error_message == "Meta's server failed; the message will be retried later."


def test_a_server_error_with_an_unknown_code_is_retried_under_that_code() -> None:
    result = classify_error(500, envelope(1, "(#1) An unknown error occurred"))
    assert result.outcome is SendOutcome.RETRY_LATER
    assert result.error_code == "META_1"


def test_a_server_error_with_a_known_permanent_code_follows_the_code() -> None:
    assert classify_error(500, envelope(131026)).outcome is SendOutcome.FAILED


def test_an_unknown_code_on_a_4xx_fails_the_recipient() -> None:
    result = classify_error(400, envelope(4242, "(#4242) Something new"))
    assert result == SendResult(
        SendOutcome.FAILED,
        error_code="META_4242",
        error_message="(#4242) Something new. Meta refused the message (error 4242).",
    )


def test_a_4xx_without_json_fails_the_recipient_under_the_status() -> None:
    result = classify_error(404, None)
    assert result == SendResult(
        SendOutcome.FAILED,
        error_code="META_HTTP_404",
        error_message="Meta refused the message (HTTP 404).",
    )


def test_a_bare_429_is_retried() -> None:
    assert classify_error(429, None).outcome is SendOutcome.RETRY_LATER


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("131048", "META_131048"),
        (True, "META_HTTP_400"),
        (-5, "META_HTTP_400"),
        ("x", "META_HTTP_400"),
    ],
)
def test_codes_are_read_as_integers_or_digit_strings_only(code: object, expected: str) -> None:
    assert classify_error(400, envelope(code)).error_code == expected


def test_meta_text_is_one_bounded_line() -> None:
    long_text = "line one\nline\x00two " + "x" * 2000
    result = classify_error(400, envelope(131026, long_text))
    assert result.error_message is not None
    assert "\n" not in result.error_message
    assert "\x00" not in result.error_message
    assert result.error_message.startswith("line one line two xxx")
    assert len(result.error_message) <= MAX_META_TEXT + 1 + len(META_ERRORS[131026][1])


def test_a_failed_status_takes_code_and_text_from_its_first_error() -> None:
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
        },
        {"code": 131048, "title": "Ignored"},
    ]
    assert classify_status_error(errors) == (
        "META_131026",
        f"Message Undeliverable. {META_ERRORS[131026][1]}",
    )


def test_a_failed_status_falls_back_to_message_then_title() -> None:
    code, message = classify_status_error([{"code": 131047, "title": "Re-engagement message"}])
    assert code == "META_131047"
    assert message == f"Re-engagement message. {META_ERRORS[131047][1]}"
    _, message = classify_status_error([{"code": 131047, "message": "The message", "title": "T"}])
    assert message.startswith("The message. ")


def test_a_failed_status_with_an_unknown_code_keeps_it() -> None:
    assert classify_status_error([{"code": 777, "title": "New"}]) == (
        "META_777",
        "New. Meta could not deliver the message (error 777).",
    )


@pytest.mark.parametrize("errors", [None, [], "oops", [42], [{"title": "No code"}]])
def test_a_failed_status_without_a_usable_error_is_still_a_failure(errors: object) -> None:
    code, message = classify_status_error(errors)
    assert code == "META_UNKNOWN"
    assert message.endswith("Meta reported the message as failed without giving a reason.")
