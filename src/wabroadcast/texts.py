"""Every sentence a person reads, in English and Hebrew: the dashboard's and the API's.

The texts live in gettext catalogues, ``locale/<language>/LC_MESSAGES/messages.po``,
read once at import with Babel. Each entry's msgid is a symbolic key (``"nav.new"``),
the same in every language, and its msgstr the text, whose ``{placeholders}`` are
filled with ``str.format``. To add a text, add an entry with the same msgid to both
files; a count is a plural entry (``msgid_plural`` the same key, one ``msgstr[i]`` per
plural form of the language: two in English, three in Hebrew), read with
``t.plural``. The unit tests prove that neither language misses a text or a
placeholder the other has, and that both files pass Babel's checkers.

Codes that come from data (a recipient's ``error_code``, a broadcast's waiting reason
and pause reason) have entries ``failure.<CODE>``, ``waiting.<reason>`` and
``pause.<kind>``; an unknown code is shown as it is, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from io import BytesIO
from typing import Literal

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

Language = Literal["en", "he"]
LANGUAGES: tuple[Language, ...] = ("en", "he")
DOMAIN = "messages"
FAILURE = "failure."
WAITING = "waiting."
PAUSE = "pause."
# A ``failure.<PREFIX>*`` entry explains every code that starts with PREFIX (``META_*``:
# Meta's numbered errors); ``{detail}`` is the rest of the code. The longest prefix wins.
FAMILY = "*"
# How the stored ``status_reason`` of a paused broadcast (an English sentence: the
# operator's pause, or the provider's words about the account) reads as a pause kind.
# First match wins, compared in lower case.
PAUSE_SENTENCES: tuple[tuple[str, str], ...] = (
    ("paused by hand", "by_hand"),
    ("error-rate brake", "error_rate"),
    ("flagged this account for spam", "spam"),
    ("spam or low quality", "quality"),
    ("policy violations", "policy"),
    ("locked this business account", "locked"),
    ("restricted", "restricted"),
    ("account blocked", "account"),
)


@dataclass(frozen=True)
class _Catalogue:
    """One language's catalogue, compiled for gettext lookups."""

    catalog: Catalog
    translations: Translations
    texts: Mapping[str, str]
    counted: frozenset[str]


def catalogue_path(language: Language) -> Traversable:
    """Where the ``.po`` file of ``language`` lives (inside the package, so wheels carry it)."""
    return resources.files("wabroadcast") / "locale" / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: Language) -> Catalog:
    """The parsed ``.po`` catalogue of ``language``."""
    with catalogue_path(language).open("rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


def _compile(language: Language) -> _Catalogue:
    catalog = read_catalog(language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    translations = Translations(compiled, domain=DOMAIN)
    texts = {
        message.id: str(message.string)
        for message in catalog
        if message.id and isinstance(message.id, str)
    }
    counted = frozenset(str(message.id[0]) for message in catalog if message.pluralizable)
    return _Catalogue(catalog=catalog, translations=translations, texts=texts, counted=counted)


_CATALOGUES: dict[Language, _Catalogue] = {language: _compile(language) for language in LANGUAGES}
_FAMILIES: tuple[str, ...] = tuple(
    sorted(
        (
            key.removeprefix(FAILURE).removesuffix(FAMILY)
            for key in _CATALOGUES["en"].texts
            if key.startswith(FAILURE) and key.endswith(FAMILY)
        ),
        key=len,
        reverse=True,
    )
)


def failure_key(code: str) -> tuple[str, str] | None:
    """The entry that explains the failure ``code`` and the ``{detail}`` it fills in
    (the code's tail after a family's prefix); None for a code no entry explains."""
    if not code or code.endswith(FAMILY):
        return None
    if FAILURE + code in _CATALOGUES["en"].texts:
        return FAILURE + code, ""
    for prefix in _FAMILIES:
        if code.startswith(prefix) and len(code) > len(prefix):
            return FAILURE + prefix + FAMILY, code[len(prefix) :]
    return None


def pause_key(status_reason: str) -> str | None:
    """The ``pause.<kind>`` entry for a paused broadcast's stored reason; None if unknown."""
    lowered = status_reason.lower()
    for fragment, kind in PAUSE_SENTENCES:
        if fragment in lowered:
            return PAUSE + kind
    return None


EN: Mapping[str, str] = _CATALOGUES["en"].texts
HE: Mapping[str, str] = _CATALOGUES["he"].texts
TEXTS: dict[Language, Mapping[str, str]] = {"en": EN, "he": HE}


class Translator:
    """``t("key", name=value)``: the text of ``key`` in one language, placeholders filled."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self._catalogue = _CATALOGUES[language]

    @property
    def direction(self) -> Literal["ltr", "rtl"]:
        return "rtl" if self.language == "he" else "ltr"

    def __call__(self, key: str, **values: object) -> str:
        if key not in self._catalogue.texts:
            raise KeyError(key)
        text = self._catalogue.translations.gettext(key)
        return text.format(**values) if values else text

    def plural(self, key: str, n: int, /, **values: object) -> str:
        """The text of the counted ``key`` in the form the language uses for ``n``.

        ``{n}`` is filled with ``n`` written with thousands separators unless ``values``
        gives it; the catalogue's plural entry has one form per plural form of the language
        (Hebrew: one, two, many).
        """
        if key not in self._catalogue.counted:
            raise KeyError(key)
        text = self._catalogue.translations.ngettext(key, key, n)
        return text.format(**{"n": f"{n:,}", **values})

    def reason(self, code: str | None) -> str:
        """Why a recipient failed, from its ``error_code``: a sentence, or the code itself
        when no entry explains it (a provider's new code); empty for no code."""
        if not code:
            return ""
        found = failure_key(code)
        if found is None:
            return code
        key, detail = found
        return self._catalogue.translations.gettext(key).format(detail=detail)

    def pause_reason(self, status_reason: str | None) -> str:
        """Why a broadcast is paused, from its stored ``status_reason`` (an English
        sentence, or a failure code): a sentence, or the stored text when it is unknown."""
        if not status_reason:
            return ""
        key = pause_key(status_reason)
        if key is not None:
            return self._catalogue.translations.gettext(key)
        return self.reason(status_reason)

    def waiting(self, reason: str | None, **values: object) -> str:
        """Why an active broadcast is not sending (its ``waiting_reason``): a sentence, or
        the reason itself when it is new. ``behind_broadcast`` needs ``id`` (the
        broadcast that goes first)."""
        if not reason:
            return ""
        key = WAITING + reason
        if key not in self._catalogue.texts:
            return reason
        text = self._catalogue.translations.gettext(key)
        return text.format(**values) if values else text

    def or_raw(self, prefix: str, code: str) -> str:
        """The text of ``prefix + code`` if there is one, else ``code`` itself (a new code)."""
        key = prefix + code
        return self._catalogue.translations.gettext(key) if key in self._catalogue.texts else code


def translate(language: Language, key: str, **values: object) -> str:
    """The text of ``key`` in ``language``, placeholders filled."""
    return Translator(language)(key, **values)
