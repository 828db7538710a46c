"""Meta's error codes, as the dispatcher must treat them: one table, no I/O.

The Graph API answers a refused send with ``{"error": {"code", "message",
"error_data": {"details"}, ...}}`` and reports a later failure in a status
webhook's ``errors[]``. Both come here, so a code means the same thing however
it arrives. Meta's own text is kept for the operator (titles are being
deprecated, so we branch on the code only) and one sentence of ours says what
it means for the broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping

from wabroadcast.providers.base import SendOutcome, SendResult
from wabroadcast.providers.common import by_http_status, clean, compose, explained

# Longest piece of Meta's text kept in an error message; the rest is cut.
MAX_META_TEXT = 500

# Template errors are a whole range of codes, one treatment.
TEMPLATE_ERRORS = range(132000, 133000)
TEMPLATE_GUIDANCE = (
    "The message template was refused (missing, not approved, paused, or its parameters "
    "do not match); fix it in WhatsApp Manager."
)

# The access token was refused: the session cannot send until it gets a new one.
TOKEN_REFUSED_CODE = 190

# Meta error code -> (how the dispatcher treats it, what it means for the broadcast).
META_ERRORS: dict[int, tuple[SendOutcome, str]] = {
    # Passing conditions: the same message may go out later.
    130429: (
        SendOutcome.RETRY_LATER,
        "The number reached its Cloud API throughput limit; the message will be retried later.",
    ),
    131056: (
        SendOutcome.RETRY_LATER,
        "Too many messages went to this recipient in a short time; "
        "the message will be retried later.",
    ),
    80007: (
        SendOutcome.RETRY_LATER,
        "The WhatsApp Business account reached a rate limit; the message will be retried later.",
    ),
    131000: (
        SendOutcome.RETRY_LATER,
        "Meta failed for an unknown reason; the message will be retried later.",
    ),
    131016: (
        SendOutcome.RETRY_LATER,
        "The Cloud API service is temporarily unavailable; the message will be retried later.",
    ),
    133004: (
        SendOutcome.RETRY_LATER,
        "The Cloud API server is temporarily unavailable; the message will be retried later.",
    ),
    # This recipient, this message: sending it again will not help.
    131026: (
        SendOutcome.FAILED,
        "WhatsApp could not deliver to this number: it may not be on WhatsApp, "
        "use an old app version, or refuse business messages.",
    ),
    131047: (
        SendOutcome.FAILED,
        "More than 24 hours have passed since the recipient last wrote, so a template is "
        'required: send the broadcast with a "template".',
    ),
    131051: (
        SendOutcome.FAILED,
        "WhatsApp does not support this message type for the recipient.",
    ),
    100: (
        SendOutcome.FAILED,
        "Meta refused a parameter of the request; check the message and the session settings.",
    ),
    131049: (
        SendOutcome.FAILED,
        "Meta held this marketing message back to limit how many one person gets; "
        "wait at least 24 hours before sending them another.",
    ),
    131050: (
        SendOutcome.FAILED,
        "The recipient stopped marketing messages from this business; do not send them more.",
    ),
    # The account itself is restricted: every further send makes it worse.
    131048: (
        SendOutcome.ACCOUNT_BLOCKED,
        "Meta limited this number for spam or low quality; sending is paused.",
    ),
    368: (
        SendOutcome.ACCOUNT_BLOCKED,
        "Meta temporarily blocked this account for policy violations; sending is paused.",
    ),
    131031: (
        SendOutcome.ACCOUNT_BLOCKED,
        "Meta locked this business account; sending is paused until it is unlocked.",
    ),
    # The session's credentials: nothing can go out until they are fixed.
    TOKEN_REFUSED_CODE: (
        SendOutcome.DISCONNECTED,
        "Meta refused the access token (expired or revoked); give the session a new one.",
    ),
}

UNAUTHORIZED_GUIDANCE = "Meta refused the request as unauthorized; check the access token."
SERVER_ERROR_GUIDANCE = "Meta's server failed; the message will be retried later."
RATE_LIMITED_GUIDANCE = "Meta asked us to slow down; the message will be retried later."
STATUS_FAILED_WITHOUT_REASON = "Meta reported the message as failed without giving a reason."


def classify_code(code: int) -> tuple[SendOutcome, str] | None:
    """How a known Meta error code is treated and what it means; None if unknown."""
    known = META_ERRORS.get(code)
    if known is not None:
        return known
    if code in TEMPLATE_ERRORS:
        return SendOutcome.FAILED, TEMPLATE_GUIDANCE
    return None


def classify_error(http_status: int, body: object) -> SendResult:
    """The result of a send Meta answered with an error status.

    ``body`` is the decoded JSON answer, or None when it was not JSON. Any HTTP
    401 means the session is disconnected whatever the code; a known code
    decides the rest; without one, a 5xx or 429 is retried and anything else
    fails the recipient.
    """
    error = _error_object(body)
    code = _code_of(error)
    meta_text = _meta_text(error)
    if http_status == 401 and code != TOKEN_REFUSED_CODE:
        return explained(SendOutcome.DISCONNECTED, "META_401", meta_text, UNAUTHORIZED_GUIDANCE)
    known = None if code is None else classify_code(code)
    if known is not None:
        outcome, guidance = known
        return explained(outcome, f"META_{code}", meta_text, guidance)
    if code is None:
        error_code = f"META_HTTP_{http_status}"
        refused = f"Meta refused the message (HTTP {http_status})."
    else:
        error_code = f"META_{code}"
        refused = f"Meta refused the message (error {code})."
    return by_http_status(
        http_status,
        error_code,
        meta_text,
        server_error=SERVER_ERROR_GUIDANCE,
        # A 429 is retried only without a code: with one, the code says what it is.
        rate_limited=RATE_LIMITED_GUIDANCE if code is None else None,
        refused=refused,
    )


def classify_status_error(errors: object) -> tuple[str, str]:
    """The error code and message of a ``failed`` status webhook, from its ``errors``.

    Only the first error counts (Meta sends one). Malformed or missing errors
    give ``META_UNKNOWN`` rather than an exception: the failure itself is certain.
    """
    first = errors[0] if isinstance(errors, list) and errors else None
    error = first if isinstance(first, Mapping) else None
    code = _code_of(error)
    meta_text = _meta_text(error)
    if code is None:
        return "META_UNKNOWN", compose(meta_text, STATUS_FAILED_WITHOUT_REASON)
    known = classify_code(code)
    guidance = (
        known[1] if known is not None else f"Meta could not deliver the message (error {code})."
    )
    return f"META_{code}", compose(meta_text, guidance)


def _error_object(body: object) -> Mapping[str, object] | None:
    """The ``error`` object of a Graph API error envelope, if the body is one."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    return error if isinstance(error, Mapping) else None


def _code_of(error: Mapping[str, object] | None) -> int | None:
    """The numeric error code, accepting an integer or a string of digits."""
    if error is None:
        return None
    code = error.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code if 0 <= code < 10**9 else None
    if isinstance(code, str) and code.isascii() and code.isdigit() and len(code) <= 9:
        return int(code)
    return None


def _meta_text(error: Mapping[str, object] | None) -> str | None:
    """Meta's own words for the error: ``error_data.details``, else ``message``, else ``title``."""
    if error is None:
        return None
    error_data = error.get("error_data")
    candidates = [error_data.get("details") if isinstance(error_data, Mapping) else None]
    candidates += [error.get("message"), error.get("title")]
    for candidate in candidates:
        if isinstance(candidate, str):
            cleaned = clean(candidate, MAX_META_TEXT)
            if cleaned:
                return cleaned
    return None
