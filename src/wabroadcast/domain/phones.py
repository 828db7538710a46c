"""Canonical phone numbers for recipients, fast enough for bulk ingest.

Recipients arrive typed by humans ("050-234-5678", "+972 50 234 5678", "00972...", "972...").
Deduplication, opt-out matching and the provider API all need one canonical E.164 string per
person, so every spelling of a number must land on the same value.

``phonenumbers.parse`` + ``is_valid_number`` is the reference, but it manages only ~25,000
numbers/s: most of its time goes into generic text handling (extensions, RFC 3966, alpha
numbers) and into ``is_valid_number`` trying every number type regex one by one. A
100,000-recipient ingest has a 2.5 s budget, so we cannot afford it per number.

The fast path therefore replays ``parse``'s decision procedure (IDD, country-code extraction,
"starts with the region's own code", national-prefix stripping with its length rules) on an
already cleaned digit string, using the same metadata, with the regexes compiled once per region
and the per-type validity patterns merged into one regex per number length. Anything the replay
does not model (carrier-code transform rules, IDD prefixes in national input, unknown country
codes, regions without metadata) and every number the replay does not find valid is handed to
the real ``phonenumbers.parse``. Because a fast answer is only ever "this exact valid E.164",
the result is always the same as the slow path's; a property test holds the two together.
"""

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Final

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    SUPPORTED_REGIONS,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberDesc,
)
from phonenumbers.phonemetadata import REGION_CODE_FOR_NON_GEO_ENTITY

__all__ = [
    "InvalidPhone",
    "InvalidReason",
    "NormalizedPhone",
    "mask_phone",
    "normalize_many",
    "normalize_phone",
]


class InvalidReason(StrEnum):
    """Why a raw phone string was rejected."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID_FORMAT = "invalid_format"
    INVALID_NUMBER = "invalid_number"


@dataclass(frozen=True, slots=True)
class NormalizedPhone:
    """A valid number in E.164 form, e.g. ``"+972502345678"``."""

    e164: str


@dataclass(frozen=True, slots=True)
class InvalidPhone:
    """A rejected number and the reason."""

    reason: InvalidReason


MIN_SIGNIFICANT_DIGITS: Final = 9
MAX_SIGNIFICANT_DIGITS: Final = 15

_E164_RE: Final = re.compile(r"\+\d{10,15}")
_MIN_E164_LEN: Final = 11
_MAX_E164_LEN: Final = 16
_DIGIT_RE: Final = re.compile(r"\d")
# phonenumbers refuses national significant numbers outside these lengths.
_MIN_NSN: Final = 2
_MAX_NSN: Final = 17

# Shared instances: the dataclass is frozen, so handing out the same object is safe and cheap.
_TOO_SHORT: Final = InvalidPhone(InvalidReason.TOO_SHORT)
_TOO_LONG: Final = InvalidPhone(InvalidReason.TOO_LONG)
_INVALID_FORMAT: Final = InvalidPhone(InvalidReason.INVALID_FORMAT)
_INVALID_NUMBER: Final = InvalidPhone(InvalidReason.INVALID_NUMBER)

# Country calling codes are prefix-free, so the first 1-3 digits identify at most one of them.
_CC_BY_PREFIX: Final[dict[str, int]] = {str(cc): cc for cc in COUNTRY_CODE_TO_REGION_CODE}


def normalize_phone(raw: str, region: str) -> NormalizedPhone | InvalidPhone:
    """Normalize one human-typed phone number to E.164.

    ``region`` is the ISO 3166 alpha-2 code used for numbers written without a country code
    (case-insensitive). Rules, in order:

    1. Any unicode letter -> ``invalid_format``.
    2. Everything except digits is dropped (unicode decimal digits count and become ASCII).
       A ``+`` is honoured only if it comes before the first digit, so ``"(+972) 50..."`` is
       international; any later ``+`` is ignored like other punctuation.
    3. A leading ``00`` (when there was no ``+``) is the international prefix, in every region.
       Fewer than 9 digits after removing ``+``/``00`` -> ``too_short``; more than 15 ->
       ``too_long``.
    4. ``phonenumbers`` parses the cleaned number with ``region`` as default: a parse error
       (including an unknown region for a number without country code) -> ``invalid_format``;
       not ``is_valid_number`` -> ``invalid_number``.
    5. The E.164 result must match ``^\\+\\d{10,15}$``, otherwise ``invalid_format``.
    """
    return _normalize(raw, region.upper())


def normalize_many(raws: Sequence[str], region: str) -> list[NormalizedPhone | InvalidPhone]:
    """Normalize a batch with the same default region; same results as ``normalize_phone``."""
    upper = region.upper()
    norm = _normalize
    return [norm(raw, upper) for raw in raws]


def mask_phone(value: str) -> str:
    """Hide a phone number for logs and UI, keeping the last 4 characters and a leading ``+``.

    ``"+972502345678"`` -> ``"+********5678"``. Every other character becomes ``*``, so the
    length is preserved. Strings of 4 characters or fewer are returned unchanged (there is
    nothing before the last 4 to hide). Never raises.
    """
    keep_plus = value.startswith("+")
    start = 1 if keep_plus else 0
    hidden = max(len(value) - 4 - start, 0)
    return value[:start] + "*" * hidden + value[start + hidden :]


def _normalize(raw: str, region: str) -> NormalizedPhone | InvalidPhone:
    # Cheap path for the usual ASCII spellings; anything else gets the general cleaner, which
    # yields the same (international?, digits) pair for these inputs.
    text = raw.replace(" ", "").replace("-", "").replace(".", "").replace("(", "").replace(")", "")
    if text.isascii() and text.isdigit():
        international = False
        digits = text
    elif text[:1] == "+" and text.isascii() and text[1:].isdigit():
        international = True
        digits = text[1:]
    else:
        cleaned = _clean_general(raw)
        if cleaned is None:
            return _INVALID_FORMAT
        international, digits = cleaned

    if not international and digits.startswith("00"):
        international = True
        digits = digits[2:]
    count = len(digits)
    if count < MIN_SIGNIFICANT_DIGITS:
        return _TOO_SHORT
    if count > MAX_SIGNIFICANT_DIGITS:
        return _TOO_LONG

    e164 = _fast_international(digits) if international else _fast_national(digits, region)
    if e164 is None:
        return _normalize_slow(international, digits, region)
    # Rule 5 without the regex: a fast-path result is "+" followed by ASCII digits only.
    if _MIN_E164_LEN <= len(e164) <= _MAX_E164_LEN:
        return NormalizedPhone(e164)
    return _INVALID_FORMAT


def _clean_general(raw: str) -> tuple[bool, str] | None:
    """Return ``(international, ascii_digits)``, or None when the input contains a letter."""
    if any(ch.isalpha() for ch in raw):
        return None
    first = _DIGIT_RE.search(raw)
    if first is None:
        return False, ""
    international = "+" in raw[: first.start()]
    digits = "".join(_DIGIT_RE.findall(raw))
    if not digits.isascii():
        digits = "".join(str(unicodedata.decimal(ch)) for ch in digits)
    return international, digits


def _normalize_slow(
    international: bool, digits: str, region: str
) -> NormalizedPhone | InvalidPhone:
    """Reference behaviour: let ``phonenumbers.parse`` decide everything."""
    try:
        number = phonenumbers.parse(("+" if international else "") + digits, region)
    except NumberParseException:
        return _INVALID_FORMAT
    if not phonenumbers.is_valid_number(number):
        return _INVALID_NUMBER
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if _E164_RE.fullmatch(e164) is None:
        return _INVALID_FORMAT
    return NormalizedPhone(e164)


# --- fast path: a replay of phonenumbers.parse on clean digit strings -----------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """What ``parse`` needs from one region's metadata, precompiled."""

    cc: int
    cc_str: str
    idd: re.Pattern[str] | None
    general: re.Pattern[str] | None
    lengths: frozenset[int]
    local_lengths: frozenset[int]
    max_length: int
    npp: re.Pattern[str] | None
    has_transform: bool

    def viable(self, number: str) -> bool:
        """``_match_national_number(number, general_desc, False)``: pattern only, no lengths."""
        return self.general is not None and self.general.fullmatch(number) is not None

    def too_long(self, number: str) -> bool:
        """``_test_number_length(number) == TOO_LONG``."""
        size = len(number)
        return size not in self.local_lengths and size > self.max_length

    def keeps_stripped(self, number: str) -> bool:
        """``_test_number_length`` is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH."""
        size = len(number)
        return size not in self.local_lengths and (size in self.lengths or size > self.max_length)

    def strip_national_prefix(self, number: str) -> str | None:
        """``_maybe_strip_national_prefix_carrier_code``'s number; None when not modelled."""
        if self.npp is None or not number:
            return number
        match = self.npp.match(number)
        if match is None:
            return number
        if self.has_transform:
            groups = match.groups()
            if not groups or groups[-1] is not None:
                return None
        rest = number[match.end() :]
        if self.viable(number) and not self.viable(rest):
            return number
        return rest


def _make_plan(metadata: PhoneMetadata | None) -> _Plan | None:
    if metadata is None or metadata.country_code is None or metadata.general_desc is None:
        return None
    general = metadata.general_desc
    if not general.possible_length:
        return None
    pattern = general.national_number_pattern
    return _Plan(
        cc=metadata.country_code,
        cc_str=str(metadata.country_code),
        idd=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        general=re.compile(pattern) if pattern else None,
        lengths=frozenset(general.possible_length),
        local_lengths=frozenset(general.possible_length_local_only),
        max_length=max(general.possible_length),
        npp=(
            re.compile(metadata.national_prefix_for_parsing)
            if metadata.national_prefix_for_parsing
            else None
        ),
        has_transform=bool(metadata.national_prefix_transform_rule),
    )


@cache
def _region_plan(region: str) -> _Plan | None:
    """Only called for ``SUPPORTED_REGIONS``, so the cache stays bounded."""
    return _make_plan(PhoneMetadata.metadata_for_region(region))


@cache
def _country_plan(cc: int) -> _Plan | None:
    """Plan ``parse`` switches to once a country code is known: the code's main region."""
    main_region = phonenumbers.region_code_for_country_code(cc)
    return _make_plan(PhoneMetadata.metadata_for_region_or_calling_code(cc, main_region))


def _fast_national(digits: str, region: str) -> str | None:
    if region not in SUPPORTED_REGIONS:
        return None
    plan = _region_plan(region)
    if plan is None or (plan.idd is not None and plan.idd.match(digits)):
        return None
    cc = plan.cc
    nsn: str | None = None
    if digits.startswith(plan.cc_str):
        potential = plan.strip_national_prefix(digits[len(plan.cc_str) :])
        if potential is None:
            return None
        if (not plan.viable(digits) and plan.viable(potential)) or plan.too_long(digits):
            nsn = potential
            # parse continues with the metadata of the code's main region.
            country = _country_plan(cc)
            if country is None:
                return None
            plan = country
    if nsn is None:
        nsn = digits
    return _finish_nsn(cc, nsn, plan)


def _fast_international(digits: str) -> str | None:
    cc = _CC_BY_PREFIX.get(digits[:1]) or _CC_BY_PREFIX.get(digits[:2])
    if cc is None:
        cc = _CC_BY_PREFIX.get(digits[:3])
        if cc is None:
            return None
    plan = _country_plan(cc)
    if plan is None:
        return None
    return _finish_nsn(cc, digits[len(plan.cc_str) :], plan)


def _finish_nsn(cc: int, nsn: str, plan: _Plan) -> str | None:
    """Final national-prefix strip and length checks of ``parse``, then validity."""
    if len(nsn) < _MIN_NSN:
        return None
    stripped = plan.strip_national_prefix(nsn)
    if stripped is None:
        return None
    if plan.keeps_stripped(stripped):
        nsn = stripped
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return None
    if not _validator(cc)(nsn):
        return None
    return "+" + plan.cc_str + nsn


# --- fast validity: is_valid_number with precompiled regexes ---------------------------------

_Check = Callable[[str], bool]


def _never(_nsn: str) -> bool:
    return False


def _type_checker(metadata: PhoneMetadata) -> _Check:
    """``_number_type_helper(nsn, metadata) != UNKNOWN``, with one merged regex per length."""
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return _never
    general_re = re.compile(general.national_number_pattern)
    descs: list[PhoneNumberDesc | None] = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        descs.append(metadata.mobile)
    sizes = general.possible_length or tuple(range(_MAX_NSN + 1))
    by_length: dict[int, re.Pattern[str]] = {}
    for size in sizes:
        patterns = [
            desc.national_number_pattern
            for desc in descs
            if desc is not None
            and desc.national_number_pattern
            and (not desc.possible_length or size in desc.possible_length)
        ]
        if patterns:
            by_length[size] = re.compile("|".join(f"(?:{p})" for p in patterns))

    def check(nsn: str) -> bool:
        merged = by_length.get(len(nsn))
        return (
            merged is not None
            and general_re.fullmatch(nsn) is not None
            and merged.fullmatch(nsn) is not None
        )

    return check


@cache
def _validator(cc: int) -> _Check:
    """``is_valid_number`` for numbers with country code ``cc``, given their NSN."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if regions == (REGION_CODE_FOR_NON_GEO_ENTITY,):
        metadata = PhoneMetadata.metadata_for_nongeo_region(cc)
        return _never if metadata is None else _type_checker(metadata)

    candidates: list[tuple[re.Pattern[str] | None, _Check, bool]] = []
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper())
        if metadata is None:
            continue
        same_code = metadata.country_code == cc
        checker = _type_checker(metadata)
        if len(regions) == 1:
            return checker if same_code else _never
        leading = (
            re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
        )
        candidates.append((leading, checker, same_code))

    def check(nsn: str) -> bool:
        # region_code_for_number: leading digits pick a region outright; otherwise the first
        # region the number is valid in wins. Then the number must be valid in that region.
        for leading, checker, same_code in candidates:
            if leading is not None:
                if leading.match(nsn):
                    return same_code and checker(nsn)
            elif checker(nsn):
                return same_code
        return False

    return check
