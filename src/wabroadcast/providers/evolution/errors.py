"""Evolution's error answers, as the dispatcher must treat them: one table, no I/O.

Evolution answers every error as ``{"status": N, "error": "...", "response":
{"message": ...}}``, where ``message`` is a string, a list of strings, a list of
lists of strings (schema errors) or, when the number is not on WhatsApp (it
checks before sending), a list of ``{"jid", "exists": false, "number"}``.
Evolution's own words are kept for the operator, cleaned, bounded and with the
session's secrets blanked out, followed by one sentence of ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from wabroadcast.providers.base import SendOutcome, SendResult
from wabroadcast.providers.common import bounded, by_http_status, explained, one_line

NOT_ON_WHATSAPP = "NOT_ON_WHATSAPP"
# Longest piece of Evolution's text kept in an error message; the rest is cut.
MAX_EVOLUTION_TEXT = 500
# How deep ``response.message`` is searched for text (schema errors nest one list deeper).
MAX_DEPTH = 4
BLANKED = "…"

NOT_ON_WHATSAPP_GUIDANCE = (
    "The number is not on WhatsApp (Evolution checked before sending); it will not be retried."
)
API_KEY_REFUSED_GUIDANCE = (
    "Evolution refused the API key; fix the session's api_key. Recipients wait without "
    "using an attempt."
)
SERVER_ERROR_GUIDANCE = "Evolution's server failed; the message will be retried later."
INSTANCE_GONE_GUIDANCE = (
    "Evolution has no such instance: the recipients wait until the session's instance is "
    "fixed (session set --config instance=...)."
)


def error_code_for(http_status: int) -> str:
    return f"EVOLUTION_HTTP_{http_status}"


def classify_error(http_status: int, body: object, secrets: Iterable[str] = ()) -> SendResult:
    """The result of a send Evolution answered with an error status.

    ``body`` is the decoded JSON answer (None when it was not JSON); ``secrets``
    are blanked out of Evolution's text. 401/403: the session is disconnected
    (nothing was sent, no attempt spent), and so is a 404 (the instance is gone);
    a 400 listing ``exists: false``: the number is not on WhatsApp, for good; 5xx
    and 429: retried later; any other 4xx fails the recipient with Evolution's reason.
    """
    text = evolution_text(body, secrets)
    code = error_code_for(http_status)
    if http_status in (401, 403):
        return explained(SendOutcome.DISCONNECTED, code, text, API_KEY_REFUSED_GUIDANCE)
    if http_status == 404:
        # The instance is gone (deleted or renamed): every recipient would meet the same.
        return explained(SendOutcome.DISCONNECTED, code, text, INSTANCE_GONE_GUIDANCE)
    if http_status == 400 and not_on_whatsapp(body):
        return SendResult(
            SendOutcome.FAILED, error_code=NOT_ON_WHATSAPP, error_message=NOT_ON_WHATSAPP_GUIDANCE
        )
    return by_http_status(
        http_status,
        code,
        text,
        server_error=SERVER_ERROR_GUIDANCE,
        rate_limited=SERVER_ERROR_GUIDANCE,
        refused=f"Evolution refused the message (HTTP {http_status}).",
    )


def not_on_whatsapp(body: object) -> bool:
    """Whether an error answer lists a number with ``"exists": false``."""
    messages = _messages(body)
    if not isinstance(messages, list):
        return False
    return any(isinstance(item, Mapping) and item.get("exists") is False for item in messages)


def evolution_text(body: object, secrets: Iterable[str] = ()) -> str | None:
    """Evolution's own words in an error answer: the strings of ``response.message``,
    else ``error``; cleaned, with ``secrets`` blanked out, bounded. None if it has none."""
    pieces: list[str] = []
    _strings(_messages(body), pieces, MAX_DEPTH)
    if not pieces and isinstance(body, Mapping) and isinstance(body.get("error"), str):
        pieces.append(body["error"])
    # Made one line before the secrets are blanked, bounded after (a cut secret would show).
    text = one_line("; ".join(pieces)[: MAX_EVOLUTION_TEXT * 4])
    for secret in secrets:
        if secret:
            text = text.replace(secret, BLANKED)
    return bounded(text, MAX_EVOLUTION_TEXT) or None


def _messages(body: object) -> object:
    response = body.get("response") if isinstance(body, Mapping) else None
    return response.get("message") if isinstance(response, Mapping) else None


def _strings(value: object, into: list[str], depth: int) -> None:
    """Collect the strings of a message, its lists and lists of lists (in order)."""
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, list) and depth > 0:
        for item in value[:20]:
            _strings(item, into, depth - 1)
