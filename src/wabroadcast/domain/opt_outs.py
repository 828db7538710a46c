"""Who asked not to be messaged: stop words in inbound texts, and lists of numbers to add.

Pure: the API, the CSV import and the inbound webhooks all normalize numbers here
(E.164 with the tenant's region, exactly as broadcast recipients are), so every
spelling of a number opts out the same person.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Final, NamedTuple

from wabroadcast.domain.phones import InvalidPhone, normalize_phone
from wabroadcast.domain.recipients import RejectedRecipient, echo_input

# What a tenant that set none of its own treats as "stop messaging me".
DEFAULT_STOP_WORDS: Final = ("STOP", "UNSUBSCRIBE", "הסר", "הסרה", "עצור")
MAX_STOP_WORDS: Final = 50
MAX_STOP_WORD_CHARS: Final = 50

# Unicode categories a stop word is compared without: spaces, punctuation ("STOP!"),
# invisible format marks (the bidi marks Hebrew keyboards add) and Hebrew points.
_IGNORED_CATEGORIES: Final = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})


def stop_word_key(text: str) -> str:
    """A text as stop words are matched: case-folded, without spaces, punctuation,
    invisible marks or vowel points. ``" Stop! "`` and ``"STOP"`` have the same key."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch
        for ch in unicodedata.normalize("NFD", folded)
        if unicodedata.category(ch) not in _IGNORED_CATEGORIES
        and not unicodedata.category(ch).startswith("P")
    )


def stop_word_keys(words: Iterable[str] | None) -> frozenset[str]:
    """The keys of a tenant's stop words (None: the defaults); empty keys dropped."""
    chosen = DEFAULT_STOP_WORDS if words is None else words
    return frozenset(key for key in map(stop_word_key, chosen) if key)


def is_stop_word(text: str | None, keys: frozenset[str]) -> bool:
    """Whether a whole inbound text is one of the stop words (not merely contains one)."""
    if not text or len(text) > 4 * MAX_STOP_WORD_CHARS:
        return False
    return stop_word_key(text) in keys


class PhoneList(NamedTuple):
    """Numbers given to opt out: the valid ones in E.164 (first spelling kept, in input
    order) and the ones that are not numbers, with their reason."""

    phones: list[str]
    invalid: list[RejectedRecipient]


def normalize_phone_list(items: Iterable[str], region: str) -> PhoneList:
    """Every input as E.164 with ``region`` for numbers without a country code."""
    phones: list[str] = []
    seen: set[str] = set()
    invalid: list[RejectedRecipient] = []
    for raw in items:
        result = normalize_phone(raw, region)
        if isinstance(result, InvalidPhone):
            invalid.append(RejectedRecipient(echo_input(raw), result.reason.value))
        elif result.e164 not in seen:
            seen.add(result.e164)
            phones.append(result.e164)
    return PhoneList(phones, invalid)
