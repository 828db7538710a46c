"""WAHA's answers, as the dispatcher must treat them: one table of rules, no I/O.

WAHA answers a refused call with NestJS's envelope (``{"statusCode", "message",
"error"}``, ``message`` sometimes a list) or, when the session is not ready,
with ``{"error", "session", "status", "expected": ["WORKING"]}`` (HTTP 422).
WAHA's own words are kept for the operator, then one sentence of ours says
what it means for the broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping

from wabroadcast.providers import common
from wabroadcast.providers.base import SendOutcome, SendResult
from wabroadcast.providers.common import by_http_status, compose, explained

# Longest piece of WAHA's text kept in an error message; the rest is cut.
MAX_WAHA_TEXT = 500
WORKING = "WORKING"

NOT_ON_WHATSAPP = "NOT_ON_WHATSAPP"
NOT_ON_WHATSAPP_MESSAGE = "WAHA reports that this number is not on WhatsApp; nothing was sent."
UNAUTHORIZED_CODE = "WAHA_UNAUTHORIZED"
UNAUTHORIZED_GUIDANCE = (
    "WAHA refused the API key; give the session WAHA's current key (WAHA_API_KEY)."
)
NOT_WORKING_CODE = "WAHA_SESSION_NOT_WORKING"
NOT_FOUND_CODE = "WAHA_SESSION_NOT_FOUND"
NOT_FOUND_GUIDANCE = "WAHA has no such session; check the session name and WAHA's URL."
SERVER_ERROR_GUIDANCE = "WAHA failed; the message will be retried later."
RATE_LIMITED_GUIDANCE = "WAHA asked us to slow down; the message will be retried later."
CHECK_FAILED_GUIDANCE = (
    "WAHA could not check the number; nothing was sent and it will be retried later."
)


def classify_send_error(http_status: int, body: object) -> SendResult:
    """The result of a ``sendText`` that WAHA answered with an error status.

    401/403: the API key is refused, the session holds (no attempt spent).
    422 naming a session status: the session is not WORKING, it holds too.
    429 and 5xx: retried later. Any other 4xx fails this recipient, never retried.
    """
    waha_text = waha_message(body)
    if http_status in (401, 403):
        return explained(
            SendOutcome.DISCONNECTED, UNAUTHORIZED_CODE, waha_text, UNAUTHORIZED_GUIDANCE
        )
    not_working = session_not_working(http_status, body)
    if not_working is not None:
        return SendResult(
            SendOutcome.DISCONNECTED, error_code=NOT_WORKING_CODE, error_message=not_working
        )
    return by_http_status(
        http_status,
        f"WAHA_HTTP_{http_status}",
        waha_text,
        server_error=SERVER_ERROR_GUIDANCE,
        rate_limited=RATE_LIMITED_GUIDANCE,
        refused=f"WAHA refused the message (HTTP {http_status}).",
    )


def classify_check_error(http_status: int, body: object) -> SendResult:
    """The result when ``check-exists`` answered with an error status (nothing was sent).

    As for a send, except that a 404 (no such session) holds the session, and
    that nothing is ever lost by trying again: only a plain 4xx fails the recipient.
    """
    if http_status == 404:
        return explained(
            SendOutcome.DISCONNECTED, NOT_FOUND_CODE, waha_message(body), NOT_FOUND_GUIDANCE
        )
    result = classify_send_error(http_status, body)
    if result.outcome is SendOutcome.RETRY_LATER:
        return result._replace(error_message=compose(waha_message(body), CHECK_FAILED_GUIDANCE))
    if result.outcome is SendOutcome.FAILED:
        return result._replace(
            error_message=compose(
                waha_message(body), f"WAHA refused to check the number (HTTP {http_status})."
            )
        )
    return result


def session_not_working(http_status: int, body: object) -> str | None:
    """The error message when a 422 says the session is not WORKING, else None."""
    if http_status != 422 or not isinstance(body, Mapping):
        return None
    expected = body.get("expected")
    if not isinstance(expected, list) or WORKING not in expected:
        return None
    status = body.get("status")
    if status == WORKING:
        return None
    named = clean(status) if isinstance(status, str) else ""
    return (
        f"The WAHA session is not WORKING (status {named or 'unknown'}); "
        "pair or restart it in WAHA's dashboard."
    )


def waha_message(body: object) -> str | None:
    """WAHA's own words for an error: ``message`` (a string or a list), else ``error``."""
    if not isinstance(body, Mapping):
        return None
    for key in ("message", "error"):
        value = body.get(key)
        if isinstance(value, list):
            value = "; ".join(item for item in value if isinstance(item, str))
        if isinstance(value, str):
            cleaned = clean(value)
            if cleaned:
                return cleaned
    return None


def clean(text: str) -> str:
    """WAHA's text made safe to store and show: one line, no control characters, bounded."""
    return common.clean(text, MAX_WAHA_TEXT)
