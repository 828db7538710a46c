"""What to tell a person when the broadcast they submitted was refused.

The API answers a machine with an error code and details; the form shows the
same facts as a sentence in the visitor's language, with the reasons and
examples a person needs to fix the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wabroadcast.domain.errors import (
    AppError,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    NoRecipients,
    NoValidRecipients,
    TooManyRecipients,
    WhatsAppNotConnected,
)
from wabroadcast.texts import Translator
from wabroadcast.web.forms import DraftProblem


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    text: str
    reasons: list[tuple[str, int]] = field(default_factory=list)
    examples: list[tuple[str, str]] = field(default_factory=list)


def describe(exc: AppError, t: Translator) -> Problem:
    """The sentence (and reasons, examples) that explains ``exc`` to the person at the form."""
    code = exc.error_code
    if isinstance(exc, DraftProblem):
        return Problem(code, t(exc.text_key, **exc.values))
    if isinstance(exc, WhatsAppNotConnected):
        # The API carries this one in both languages: Hebrew in message, English in message_en.
        english = str(exc.extra.get("message_en") or exc.message)
        return Problem(code, exc.message if t.language == "he" else english)
    if isinstance(exc, NoRecipients):
        return Problem(code, t("error.no_recipients"))
    if isinstance(exc, NoValidRecipients):
        reasons = exc.details.get("reasons", {})
        examples = exc.details.get("examples", [])
        return Problem(
            code,
            t.plural("error.no_valid", int(exc.details.get("invalid_count", 0))),
            reasons=[(t.or_raw("reason.", str(r)), int(n)) for r, n in reasons.items()],
            examples=[(str(e["input"]), t.or_raw("reason.", str(e["reason"]))) for e in examples],
        )
    if isinstance(exc, TooManyRecipients):
        return Problem(
            code,
            t(
                "error.too_many",
                max=exc.details.get("max", "?"),
                count=exc.details.get("received_count", "?"),
            ),
        )
    if isinstance(exc, IdempotencyKeyMismatch):
        return Problem(code, t("error.key_mismatch"))
    if isinstance(exc, IdempotencyKeyInUse):
        return Problem(code, t("error.key_in_use"))
    return Problem(code, t("error.other", message=exc.message))
