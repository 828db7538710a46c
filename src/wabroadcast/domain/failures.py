"""Which failed recipients an operator's "retry failed" sends again: one pure rule.

A recipient's ``error_code`` is the provider's (or ours); the codes below are the ones
that can never pass by waiting: the number is not on WhatsApp or not a number, the
recipient blocked us or opted out, the message type cannot reach them. Every other
failure may pass (rate limits, server errors, timeouts, attempts used up, a delivery
that failed, an account restriction since dealt with, a template since fixed), so it is
sent again, except ``UNKNOWN_OUTCOME``: WhatsApp may already have that message, so it is
sent again only when the operator names that code (docs/guarantees.md, section 4).
"""

from __future__ import annotations

from collections.abc import Iterable

# The dispatcher's code for a send that may or may not have reached WhatsApp
# (``dispatch.outcome.UNKNOWN_OUTCOME``; a unit test keeps the two equal).
UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"

# Failures that sending again cannot fix, whichever provider reported them.
NEVER_PASSING_CODES = frozenset(
    {
        "NOT_ON_WHATSAPP",  # simulator, Evolution, WAHA
        "INVALID_NUMBER",  # simulator, Baileys, WAHA
        "BLOCKED_BY_RECIPIENT",  # simulator
        "META_131026",  # Cloud API: the number cannot receive WhatsApp messages
        "META_131050",  # Cloud API: the recipient stopped marketing messages
        "META_131051",  # Cloud API: message type not supported for the recipient
    }
)
# Failures sent again only when the operator names them: a resend may arrive twice.
NAMED_ONLY_CODES = frozenset({UNKNOWN_OUTCOME})


def may_pass(error_code: str | None, named: frozenset[str] | None = None) -> bool:
    """Whether a recipient that failed with ``error_code`` is sent again.

    ``named``: the codes the operator asked for (None or empty: every code that may
    pass). A code that never passes is never sent again, even when named; a failure
    without a code is sent again only when no codes are named.
    """
    if error_code in NEVER_PASSING_CODES:
        return False
    if named:
        return error_code is not None and error_code in named
    return error_code not in NAMED_ONLY_CODES


def retryable_codes(
    failed_codes: Iterable[str | None], named: Iterable[str] | None = None
) -> set[str | None]:
    """The codes among ``failed_codes`` (those of a broadcast's failed recipients) whose
    recipients "retry failed" re-queues, given the codes the operator ``named``."""
    wanted = frozenset(named) if named is not None else None
    return {code for code in failed_codes if may_pass(code, wanted)}
