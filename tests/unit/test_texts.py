"""The gettext catalogues: complete in both languages, well-formed, and explaining every
code a person can meet on the dashboard (failure, pause and waiting reasons)."""

from __future__ import annotations

import re
import string
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message

from wabroadcast import texts
from wabroadcast.broadcasts.control import PAUSED_BY_OPERATOR
from wabroadcast.broadcasts.estimates import WaitingReason
from wabroadcast.dispatch.outcome import UNKNOWN_OUTCOME
from wabroadcast.domain.failures import NEVER_PASSING_CODES
from wabroadcast.observability.prometheus import ERROR_CODES
from wabroadcast.providers.base import SendOutcome
from wabroadcast.providers.cloud_api.errors import META_ERRORS, TEMPLATE_ERRORS
from wabroadcast.providers.simulator.rules import ERRORS as SIMULATOR_ERRORS
from wabroadcast.providers.waha.webhook import RESTRICTED_MESSAGE as WAHA_RESTRICTED
from wabroadcast.texts import LANGUAGES, Language, Translator, read_catalog

SOURCE = Path(texts.__file__).parent
# Reasons the estimates are growing (daily cap, quiet hours): worded ahead of them.
COMING_WAITING_REASONS = ("daily_cap", "quiet_hours")
# Where recipients get their error codes: providers, the dispatcher, the receipts.
CODE_SOURCES = ("providers", "dispatch", "receipts")


def _catalogs() -> dict[Language, Catalog]:
    return {language: read_catalog(language) for language in LANGUAGES}


def _messages(catalog: Catalog) -> dict[str, Message]:
    return {_key(message): message for message in catalog if message.id}


def _key(message: Message) -> str:
    return message.id if isinstance(message.id, str) else str(message.id[0])


def _forms(message: Message) -> list[str]:
    forms = message.string
    if isinstance(forms, str):
        return [forms]
    return [str(form) for form in forms or ()]


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _failure_codes_in_source() -> set[str]:
    """Every error code a recipient can be given, as the source spells it: literal
    ``error_code="..."``, ``..._CODE = "..."`` constants, and one sample of each family
    built with an f-string (``f"META_{code}"``)."""
    found: set[str] = set()
    for directory in CODE_SOURCES:
        for path in (SOURCE / directory).rglob("*.py"):
            source = path.read_text("utf-8")
            found.update(re.findall(r'error_code="([A-Z][A-Z0-9_]*)"', source))
            found.update(re.findall(r'^[A-Z_]*CODE[A-Z_]* = "([A-Z][A-Z0-9_]*)"', source, re.M))
            found.update(f"{prefix}999" for prefix in re.findall(r'f"([A-Z][A-Z0-9_]*_)\{', source))
    return found


def _every_failure_code() -> set[str]:
    return (
        _failure_codes_in_source()
        | set(ERROR_CODES)
        | set(NEVER_PASSING_CODES)
        | set(SIMULATOR_ERRORS)
        | {f"META_{code}" for code in META_ERRORS}
        | {f"META_{TEMPLATE_ERRORS[0]}", f"META_{TEMPLATE_ERRORS[-1]}"}
        | {UNKNOWN_OUTCOME, "META_UNKNOWN", "META_401", "BAILEYS_ERROR", "BAILEYS_463"}
    )


def _account_level_pause_reasons() -> list[str]:
    """The ``status_reason`` a broadcast gets when WhatsApp refuses its account: the
    provider's sentence for an account-level outcome, or the dispatcher's fallbacks."""
    reasons = [
        message
        for outcome, message in SIMULATOR_ERRORS.values()
        if outcome is SendOutcome.ACCOUNT_BLOCKED
    ]
    reasons += [
        f"(#{code}) Meta's own words. {message}"
        for code, (outcome, message) in META_ERRORS.items()
        if outcome is SendOutcome.ACCOUNT_BLOCKED
    ]
    reasons.append(WAHA_RESTRICTED.format(code=463))
    reasons.append(
        "WhatsApp restricted this account (463): sending is paused; sending more makes it worse."
    )
    reasons += ["account blocked", "the account is restricted", "ACCOUNT_RESTRICTED"]
    return reasons


def test_both_catalogues_hold_the_same_msgids_each_once() -> None:
    catalogs = _catalogs()
    assert set(_messages(catalogs["en"])) == set(_messages(catalogs["he"]))
    for language in LANGUAGES:
        path = SOURCE / "locale" / language / "LC_MESSAGES" / "messages.po"
        ids = re.findall(r'^msgid "(.+)"$', path.read_text("utf-8"), re.M)
        assert [key for key, seen in Counter(ids).items() if seen > 1] == [], language


def test_every_msgid_has_the_same_placeholders_in_both_languages() -> None:
    catalogs = _catalogs()
    english, hebrew = _messages(catalogs["en"]), _messages(catalogs["he"])
    for key, message in english.items():
        en_forms, he_forms = _forms(message), _forms(hebrew[key])
        # The last form is the general one ("{n} recipients"); a form for one or two
        # may spell the number out ("a minute", "כשתי דקות").
        assert _placeholders(he_forms[-1]) == _placeholders(en_forms[-1]), key
        allowed = _placeholders(en_forms[-1])
        for form in en_forms + he_forms:
            assert _placeholders(form) <= allowed, (key, form)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_entry_is_translated_and_not_fuzzy(language: Language) -> None:
    for message in read_catalog(language):
        if message.id:
            assert all(form.strip() for form in _forms(message)), message.id
            assert not message.fuzzy, message.id


@pytest.mark.parametrize(("language", "forms"), [("en", 2), ("he", 3)])
def test_plural_entries_have_the_languages_number_of_forms(language: Language, forms: int) -> None:
    catalog = read_catalog(language)
    assert catalog.num_plurals == forms == Catalog(locale=language).num_plurals
    plural = [message for message in catalog if message.pluralizable]
    assert plural, "no plural entries"
    for message in plural:
        assert len(_forms(message)) == catalog.num_plurals, message.id
        assert "{n}" in _forms(message)[-1], message.id


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogues_pass_babels_checkers_and_carry_babels_headers(language: Language) -> None:
    catalog = read_catalog(language)
    assert [(message.id, errors) for message, errors in catalog.check()] == []
    expected = Catalog(locale=language)
    path = SOURCE / "locale" / language / "LC_MESSAGES" / "messages.po"
    header = path.read_text("utf-8").split("\n\n", 1)[0]
    assert f'"Language: {language}\\n"' in header
    assert f'"Plural-Forms: {expected.plural_forms}\\n"' in header
    assert catalog.plural_forms == expected.plural_forms


def test_hebrew_plurals_take_the_form_for_one_two_and_many() -> None:
    t = Translator("he")
    assert t.plural("proof.duplicates", 1) == "כפילות אחת הוסרה"
    assert t.plural("proof.duplicates", 2) == "2 כפילויות הוסרו"
    assert t.plural("proof.duplicates", 5) == "5 כפילויות הוסרו"
    assert "המתינו כדקה" in t.plural("signin.too_many", 1)
    assert "המתינו כשתי דקות" in t.plural("signin.too_many", 2)
    assert "המתינו כ־5 דקות" in t.plural("signin.too_many", 5)


def test_english_plurals_read_right_in_the_singular() -> None:
    t = Translator("en")
    assert t.plural("proof.duplicates", 1) == "1 duplicate removed"
    assert t.plural("proof.duplicates", 0) == "0 duplicates removed"
    assert t.plural("recipients.on_page", 1_200) == "1,200 recipients on this page"
    assert "about a minute" in t.plural("signin.too_many", 1)
    assert "about 3 minutes" in t.plural("signin.too_many", 3)


def test_plural_and_plain_texts_are_asked_for_their_own_way() -> None:
    t = Translator("en")
    with pytest.raises(KeyError):
        t("proof.duplicates")
    with pytest.raises(KeyError):
        t.plural("brand", 1)
    assert t("signed_in_as", name="Dana") == "Signed in as Dana"
    assert Translator("he").direction == "rtl"
    assert t.direction == "ltr"
    assert t.or_raw("status.", "running") == texts.EN["status.running"]
    assert t.or_raw("status.", "brand_new") == "brand_new"


def test_the_failure_codes_found_include_every_provider_family() -> None:
    codes = _every_failure_code()
    for sample in ("META_999", "META_HTTP_999", "EVOLUTION_HTTP_999", "WAHA_HTTP_999"):
        assert sample in codes
    assert {"CHECK_UNREACHABLE", "WAHA_ACK_ERROR", "EVOLUTION_ERROR", "DELIVERY_FAILED"} <= codes


@pytest.mark.parametrize("code", sorted(_every_failure_code()))
def test_every_failure_code_has_a_sentence_in_both_languages(code: str) -> None:
    assert texts.failure_key(code) is not None, code
    english, hebrew = Translator("en").reason(code), Translator("he").reason(code)
    assert english
    assert english != code
    assert hebrew
    assert hebrew != code
    assert hebrew != english
    assert re.search("[\u05d0-\u05ea]", hebrew), hebrew


def test_a_family_sentence_names_the_rest_of_the_code() -> None:
    assert Translator("en").reason("META_HTTP_503") == (
        "Meta answered the send with an error (HTTP 503)."
    )
    assert Translator("he").reason("META_424242") == "Meta דחתה את ההודעה (שגיאה 424242)."
    assert "WhatsApp Manager" in Translator("en").reason("META_132015")


def test_an_unknown_code_is_shown_as_it_is() -> None:
    for language in LANGUAGES:
        t = Translator(language)
        assert t.reason("BRAND_NEW_CODE") == "BRAND_NEW_CODE"
        assert t.reason("META_") == "META_"
        assert t.reason(None) == ""
        assert t.waiting("brand_new") == "brand_new"
        assert t.pause_reason("A reason nobody wrote yet.") == "A reason nobody wrote yet."


@pytest.mark.parametrize("reason", [*(r.value for r in WaitingReason), *COMING_WAITING_REASONS])
def test_every_waiting_reason_has_a_sentence_in_both_languages(reason: str) -> None:
    english = Translator("en").waiting(reason, id=7)
    hebrew = Translator("he").waiting(reason, id=7)
    assert english != reason
    assert hebrew != reason
    assert hebrew != english
    if reason == WaitingReason.BEHIND_BROADCAST:
        assert "#7" in english
        assert "#7" in hebrew


def test_a_pause_by_hand_reads_as_one() -> None:
    assert texts.pause_key(PAUSED_BY_OPERATOR) == "pause.by_hand"
    assert Translator("he").pause_reason(PAUSED_BY_OPERATOR) == (
        "הושהתה ידנית; חדשו את השליחה כדי לשלוח את השאר."
    )


@pytest.mark.parametrize("stored", _account_level_pause_reasons())
def test_every_account_level_pause_reads_as_a_translated_sentence(stored: str) -> None:
    key = texts.pause_key(stored)
    assert key is not None, stored
    assert key != "pause.by_hand", stored
    hebrew = Translator("he").pause_reason(stored)
    assert hebrew == texts.HE[key]
    assert Translator("en").pause_reason(stored) == texts.EN[key]


def test_every_pause_kind_has_a_sentence_in_both_languages() -> None:
    for _, kind in texts.PAUSE_SENTENCES:
        key = texts.PAUSE + kind
        assert texts.EN[key]
        assert texts.HE[key]
        assert texts.EN[key] != texts.HE[key]
