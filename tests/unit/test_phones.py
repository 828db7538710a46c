"""Tests for phone normalization: the spec's rules, and fast path == phonenumbers.parse."""

import random
import re
import unicodedata

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberType

from wabroadcast.domain import phones
from wabroadcast.domain.phones import (
    InvalidPhone,
    InvalidReason,
    NormalizedPhone,
    mask_phone,
    normalize_many,
    normalize_phone,
)

Result = NormalizedPhone | InvalidPhone


def slow_reference(raw: str, region: str) -> Result:
    """The spec's rules written out plainly, with ``phonenumbers.parse`` doing all parsing."""
    if any(ch.isalpha() for ch in raw):
        return InvalidPhone(InvalidReason.INVALID_FORMAT)
    digits: list[str] = []
    international = False
    for ch in raw:
        if ch.isdecimal():
            digits.append(str(unicodedata.decimal(ch)))
        elif ch == "+" and not digits:
            international = True
    number = "".join(digits)
    if not international and number.startswith("00"):
        international, number = True, number[2:]
    if len(number) < 9:
        return InvalidPhone(InvalidReason.TOO_SHORT)
    if len(number) > 15:
        return InvalidPhone(InvalidReason.TOO_LONG)
    try:
        parsed = phonenumbers.parse(("+" if international else "") + number, region.upper())
    except phonenumbers.NumberParseException:
        return InvalidPhone(InvalidReason.INVALID_FORMAT)
    if not phonenumbers.is_valid_number(parsed):
        return InvalidPhone(InvalidReason.INVALID_NUMBER)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if re.fullmatch(r"\+\d{10,15}", e164) is None:
        return InvalidPhone(InvalidReason.INVALID_FORMAT)
    return NormalizedPhone(e164)


def invalid(reason: InvalidReason) -> InvalidPhone:
    return InvalidPhone(reason)


# --- the spec's examples --------------------------------------------------------------------

IL_SPELLINGS = [
    "0502345678",
    "050-234-5678",
    "050 234 5678",
    "(050) 234-5678",
    "050.234.5678",
    "050/234/5678",
    "+972 50-234-5678",
    "+972502345678",
    "+972 (0)50 234 5678",
    "(+972) 50-234-5678",
    "00972502345678",
    "00 972 50 234 5678",
    "972502345678",
    "972-50-234-5678",
    "  050 234 5678  ",
    "\t050\u00a0234\u20135678\n",
    "050+2345678",
    "٠٥٠٢٣٤٥٦٧٨",
]


@pytest.mark.parametrize("raw", IL_SPELLINGS)
def test_israeli_spellings_land_on_one_e164(raw: str) -> None:
    assert normalize_phone(raw, "IL") == NormalizedPhone("+972502345678")


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 650 253 0000", "IL", "+16502530000"),
        ("+44 20 7946 0018", "IL", "+442079460018"),
        ("+44 020 7946 0018", "IL", "+442079460018"),
        ("0049 30 901820", "IL", "+4930901820"),
        ("+49 1512 3456789", "IL", "+4915123456789"),
        ("+39 06 6982 0000", "IL", "+390669820000"),
        ("+7 912 345-67-89", "IL", "+79123456789"),
        ("+33 1 23 45 67 89", "IL", "+33123456789"),
        ("+1 (212) 555-0123", "GB", "+12125550123"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("1-650-253-0000", "US", "+16502530000"),
        ("16502530000", "US", "+16502530000"),
        ("1-800-555-0199", "US", "+18005550199"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("0 800 123 4567", "GB", "+448001234567"),
        ("030 901820", "DE", "+4930901820"),
        ("06 6982 0000", "IT", "+390669820000"),
        ("(11) 96123-4567", "BR", "+5511961234567"),
        ("081234 56789", "IN", "+918123456789"),
        ("01 23 45 67 89", "FR", "+33123456789"),
        ("02-6234567", "IL", "+97226234567"),
        ("+972 2-623-4567", "IL", "+97226234567"),
    ],
)
def test_numbers_from_other_countries_and_regions(raw: str, region: str, e164: str) -> None:
    assert normalize_phone(raw, region) == NormalizedPhone(e164)


def test_region_is_case_insensitive() -> None:
    assert normalize_phone("050-234-5678", "il") == NormalizedPhone("+972502345678")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", InvalidReason.TOO_SHORT),
        ("   ", InvalidReason.TOO_SHORT),
        ("+", InvalidReason.TOO_SHORT),
        ("0505", InvalidReason.TOO_SHORT),
        ("050-234-56", InvalidReason.TOO_SHORT),
        ("00 1234 5678", InvalidReason.TOO_SHORT),
        ("+972 5023", InvalidReason.TOO_SHORT),
        ("1234567890123456", InvalidReason.TOO_LONG),
        ("+972 50 234 5678 1234", InvalidReason.TOO_LONG),
        ("00 1234 5678 9012 3456", InvalidReason.TOO_LONG),
        ("050-234-567a", InvalidReason.INVALID_FORMAT),
        ("tel: 0502345678", InvalidReason.INVALID_FORMAT),
        ("0502345678 ext 12", InvalidReason.INVALID_FORMAT),
        ("050 חמש 5678", InvalidReason.INVALID_FORMAT),
        ("+0502345678", InvalidReason.INVALID_FORMAT),
        ("+999 123 456 789", InvalidReason.INVALID_FORMAT),
        ("012 999 123 4567", InvalidReason.INVALID_FORMAT),
        ("0501234567", InvalidReason.INVALID_NUMBER),
        ("05 0234 567", InvalidReason.INVALID_NUMBER),
        ("+1 123 456 7890", InvalidReason.INVALID_NUMBER),
        ("+972 1 234 5678", InvalidReason.INVALID_NUMBER),
    ],
)
def test_invalid_reasons(raw: str, reason: InvalidReason) -> None:
    assert normalize_phone(raw, "IL") == invalid(reason)


def test_valid_number_whose_e164_is_too_short_is_invalid_format() -> None:
    # Andorra: 3-digit code + 6-digit number is valid, but E.164 has only 9 digits.
    assert phonenumbers.is_valid_number(phonenumbers.parse("+376312345"))
    assert normalize_phone("+376 312 345", "IL") == invalid(InvalidReason.INVALID_FORMAT)


def test_valid_number_whose_e164_is_too_long_is_invalid_format() -> None:
    # A 14-digit German national number is valid, but "+49" makes 16 digits.
    assert phonenumbers.is_valid_number(phonenumbers.parse("087425473459527", "DE"))
    assert normalize_phone("087425473459527", "DE") == invalid(InvalidReason.INVALID_FORMAT)


def test_unknown_region_only_accepts_international_numbers() -> None:
    assert normalize_phone("0502345678", "XX") == invalid(InvalidReason.INVALID_FORMAT)
    assert normalize_phone("+972502345678", "XX") == NormalizedPhone("+972502345678")


def test_normalize_many_matches_normalize_phone() -> None:
    raws = ["050-234-5678", "", "abc", "+1 650 253 0000", "0501234567", "1" * 16]
    assert normalize_many(raws, "IL") == [
        NormalizedPhone("+972502345678"),
        invalid(InvalidReason.TOO_SHORT),
        invalid(InvalidReason.INVALID_FORMAT),
        NormalizedPhone("+16502530000"),
        invalid(InvalidReason.INVALID_NUMBER),
        invalid(InvalidReason.TOO_LONG),
    ]


def test_reasons_are_the_spec_strings() -> None:
    assert [r.value for r in InvalidReason] == [
        "too_short",
        "too_long",
        "invalid_format",
        "invalid_number",
    ]


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("0502345678", "IL"),
        ("050-234-5678", "IL"),
        ("(03) 607 1099", "IL"),
        ("+972 50-234-5678", "IL"),
        ("+972 (0)50 234 5678", "IL"),
        ("00972502345678", "IL"),
        ("972502345678", "IL"),
        ("+1 650 253 0000", "IL"),
        ("+39 06 6982 0000", "IL"),
        ("(650) 253-0000", "US"),
        ("1-650-253-0000", "US"),
        ("020 7946 0018", "GB"),
        ("(11) 96123-4567", "BR"),
    ],
)
def test_common_shapes_never_reach_the_slow_path(
    raw: str, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object) -> Result:
        raise AssertionError("slow path used")

    monkeypatch.setattr(phones, "_normalize_slow", fail)
    assert isinstance(normalize_phone(raw, region), NormalizedPhone)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # "019" is an Israeli carrier's international prefix, so phonenumbers reads
        # "0 1919 ..." as +1 919 ... rather than the domestic 1919 number.
        ("01919123456", invalid(InvalidReason.INVALID_NUMBER)),
        ("1919123456", NormalizedPhone("+9721919123456")),
        ("+972 1919 123456", NormalizedPhone("+9721919123456")),
        ("013 1 650 253 0000", NormalizedPhone("+16502530000")),
    ],
)
def test_carrier_international_prefix_in_national_input(raw: str, expected: Result) -> None:
    assert normalize_phone(raw, "IL") == expected == slow_reference(raw, "IL")


# --- fast path == slow path -----------------------------------------------------------------

PROPERTY_REGIONS = ("IL", "US", "GB", "DE", "IT", "BR", "IN", "FR", "AR", "RU", "JP", "AU", "CA")
_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.UAN,
)


def _example_nsns(region: str) -> tuple[str, ...]:
    found = (phonenumbers.example_number_for_type(region, t) for t in _TYPES)
    return tuple(phonenumbers.national_significant_number(n) for n in found if n is not None)


def _trunk(region: str) -> str:
    metadata = PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix if metadata else None) or "0"


EXAMPLES = {region: _example_nsns(region) for region in phonenumbers.SUPPORTED_REGIONS}
SHAPES = ("national", "trunk", "plus", "plus_trunk", "idd_00", "bare_cc", "plus_only")
SEPARATORS = (" ", " ", "-", "-", ".", "(", ")", "/", "\t", "\u00a0", "+")


def _spell(shape: str, cc: int, nsn: str, trunk: str) -> str:
    return {
        "national": nsn,
        "trunk": trunk + nsn,
        "plus": f"+{cc}{nsn}",
        "plus_trunk": f"+{cc}{trunk}{nsn}",
        "idd_00": f"00{cc}{nsn}",
        "bare_cc": f"{cc}{nsn}",
        "plus_only": f"+{nsn}",
    }[shape]


@st.composite
def phone_inputs(draw: st.DrawFn) -> tuple[str, str]:
    region = draw(st.sampled_from(PROPERTY_REGIONS))
    foreign = draw(st.integers(min_value=0, max_value=3)) == 0
    home = draw(st.sampled_from(PROPERTY_REGIONS)) if foreign else region
    if draw(st.integers(min_value=0, max_value=3)):
        # A real-looking number: an example number with its last digits redrawn.
        example = draw(st.sampled_from(EXAMPLES[home]))
        cut = draw(st.integers(min_value=0, max_value=3))
        tail = draw(st.text("0123456789", min_size=cut, max_size=cut + 1))
        nsn = example[: len(example) - cut] + tail
    else:
        nsn = draw(st.text("0123456789", min_size=5, max_size=18))
    shape = draw(st.sampled_from(SHAPES))
    text = _spell(shape, phonenumbers.country_code_for_region(home), nsn, _trunk(home))
    # A few separators at random places, as people type them (a stray "+" included).
    inserts = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=len(text)), st.sampled_from(SEPARATORS)),
            max_size=6,
        )
    )
    for position, sep in sorted(inserts, reverse=True):
        text = text[:position] + sep + text[position:]
    return text, region


@settings(max_examples=600, derandomize=True, database=None, deadline=None)
@given(phone_inputs())
def test_fast_path_agrees_with_phonenumbers_parse(case: tuple[str, str]) -> None:
    raw, region = case
    assert normalize_phone(raw, region) == slow_reference(raw, region)


def test_fast_path_agrees_for_every_region() -> None:
    """Seeded sweep over all regions, including multi-region codes and odd national prefixes."""
    rng = random.Random(7)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    mismatches: list[tuple[str, str]] = []
    for _ in range(6000):
        region = rng.choice(regions)
        home = region if rng.random() < 0.7 else rng.choice(regions)
        examples = EXAMPLES[home]
        if examples and rng.random() < 0.7:
            nsn = rng.choice(examples)
            cut = rng.randint(0, 3)
            nsn = nsn[: len(nsn) - cut] + "".join(rng.choices("0123456789", k=rng.randint(0, 4)))
        else:
            nsn = "".join(rng.choices("0123456789", k=rng.randint(5, 18)))
        raw = _spell(
            rng.choice(SHAPES), phonenumbers.country_code_for_region(home), nsn, _trunk(home)
        )
        if normalize_phone(raw, region) != slow_reference(raw, region):
            mismatches.append((raw, region))
    assert mismatches == []


def test_fast_validity_matches_is_valid_number_on_example_numbers() -> None:
    checked = 0
    for region, nsns in EXAMPLES.items():
        cc = phonenumbers.country_code_for_region(region)
        for nsn in nsns:
            for candidate in (nsn, nsn[:-1], nsn + "5", "9" + nsn[1:]):
                number = phonenumbers.parse(f"+{cc}{candidate}")
                nsn_parsed = phonenumbers.national_significant_number(number)
                expected = phonenumbers.is_valid_number(number)
                assert phones._validator(number.country_code)(nsn_parsed) is expected, candidate
                checked += 1
    assert checked > 1000


# --- masking --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+972502345678", "+********5678"),
        ("+16502530000", "+*******0000"),
        ("0502345678", "******5678"),
        ("050-234-5678", "********5678"),
        ("12345", "*2345"),
        ("1234", "1234"),
        ("+1234", "+1234"),
        ("+12", "+12"),
        ("+", "+"),
        ("", ""),
        ("++12345", "+**2345"),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked
