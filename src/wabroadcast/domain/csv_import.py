"""Recipients from the CSV files people actually have: the one importer of the product.

The dashboard's upload, ``wabroadcast send --csv`` and the multipart variant of
``POST /api/whatsapp/broadcasts`` all call ``import_csv``, so a file that works in
one works in the others. Pure and CPU-bound, like ``domain/recipients``.

What it accepts:

- bytes in UTF-8 (with or without a BOM) or UTF-16 with a BOM (Excel's "Unicode text");
- ``,``, ``;`` or tab between cells, found by ``csv.Sniffer`` (restricted to those three);
- the phone column found by its header, in English or Hebrew (``Phone Number``,
  ``mobile``, ``tel``, ``טלפון``, ``נייד`` ...; case, spaces, ``_``, ``-`` and ``.``
  ignored), else the first column whose values mostly parse as phones in the tenant's
  region, else the first column whose values mostly look like phone numbers (so a
  list of mistyped numbers is reported number by number, not as "no phone column");
- a header row or none: without a header, the phone column is found by its values
  and the other cells are kept under ``column_<n>``.

A ``name`` column becomes ``name``, a ``lead_id`` column ``lead_id`` (when a whole
number), every other column a variable ``{header: value}``. The phone is returned as
written: normalizing and de-duplicating is ``RecipientPreparer``'s job.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from wabroadcast.domain.errors import CsvNotText, NoPhoneColumn, ValidationFailed
from wabroadcast.domain.phones import NormalizedPhone, normalize_phone

DELIMITERS: Final = ",;\t"
# Rows read to sniff the delimiter and to judge a column by its values.
SNIFF_CHARS: Final = 64 * 1024
SAMPLE_ROWS: Final = 50
MAX_LEAD_ID: Final = 2**53 - 1


def header_key(header: str) -> str:
    """A header as it is matched: case-folded, without spaces, ``_ - . ' "`` or geresh."""
    return re.sub(r"[\s_\-.'\"׳״\ufeff\u200e\u200f]+", "", header).casefold()


_PHONE_HEADERS: Final = frozenset(
    header_key(h)
    for h in (
        "phone",
        "phone number",
        "phone no",
        "phones",
        "mobile",
        "mobile number",
        "mobile phone",
        "cell",
        "cellphone",
        "cell phone",
        "cellular",
        "tel",
        "telephone",
        "whatsapp",
        "whatsapp number",
        "msisdn",
        "טלפון",
        "מספר טלפון",
        "מס טלפון",
        "מס' טלפון",
        "טלפון נייד",
        "נייד",
        # Not "טל": it is also a first name, and a headerless file may start with one.
        "פלאפון",
        "סלולרי",
        "סלולר",
        "וואטסאפ",
    )
)
_NAME_HEADERS: Final = frozenset(
    header_key(h) for h in ("name", "full name", "contact name", "שם", "שם מלא", "איש קשר")
)
_LEAD_ID_HEADERS: Final = frozenset(
    header_key(h) for h in ("lead_id", "lead id", "מזהה ליד", "מספר ליד")
)
# What a typed phone number is made of: digits and the punctuation people put between them.
_PHONE_SHAPE: Final = re.compile(r"\+?[\d\s\-.()/]*\d[\d\s\-.()/]*")
_MIN_SHAPE_DIGITS: Final = 6


class ImportedRow(NamedTuple):
    """One recipient of the file; a NamedTuple because a file has up to 100,000 of them."""

    phone: str
    name: str | None
    lead_id: int | None
    variables: dict[str, str]

    def recipient(self) -> dict[str, Any]:
        """The API's recipient object: phone, and name, lead_id and variables when present."""
        item: dict[str, Any] = {"phone": self.phone}
        if self.lead_id is not None:
            item["lead_id"] = self.lead_id
        if self.name is not None:
            item["name"] = self.name
        if self.variables:
            item["variables"] = self.variables
        return item


@dataclass(frozen=True, slots=True)
class CsvImport:
    """What was read, and how: the rows and the columns they came from."""

    rows: list[ImportedRow]
    delimiter: str
    has_header: bool
    columns: list[str]
    phone_column: int | None


def decode_csv(data: bytes) -> str:
    """The text of a CSV file: UTF-16 with a BOM, else UTF-8 with or without one."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16")
        else:
            text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvNotText(
            "file: a CSV file must be UTF-8 or UTF-16 text",
            details={"position": exc.start},
        ) from None
    return text.removeprefix("\ufeff")


def import_csv(data: bytes | str, region: str) -> CsvImport:
    """The recipients in a CSV file; ``region`` judges numbers without a country code.

    Raises ``CsvNotText`` for bytes that are not UTF-8/UTF-16 text, ``NoPhoneColumn``
    when no column is headed or filled like phone numbers, and ``ValidationFailed`` for
    text the CSV reader cannot split (a cell over 128 KiB). An empty file has no rows.
    """
    text = decode_csv(data) if isinstance(data, bytes) else data.removeprefix("\ufeff")
    delimiter = sniff_delimiter(text)
    try:
        rows = [
            [cell.strip() for cell in row]
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if any(cell.strip() for cell in row)
        ]
    except csv.Error as exc:  # a cell past the reader's limit (128 KiB): an unclosed quote
        raise ValidationFailed(
            f"file: not a CSV file ({exc})", details={"field": "file", "reason": str(exc)}
        ) from None
    if not rows:
        return CsvImport([], delimiter, False, [], None)
    first = rows[0]
    keys = [header_key(cell) for cell in first]
    phone_at = next((i for i, key in enumerate(keys) if key in _PHONE_HEADERS), None)
    if phone_at is not None:
        return _read(rows[1:], delimiter, first, phone_at, header=True)
    width = max(len(row) for row in rows[:SAMPLE_ROWS])
    data_rows = rows[1 : SAMPLE_ROWS + 1] or rows[:1]
    phone_at = _column_by_values(data_rows, width, region)
    if phone_at is None:
        raise NoPhoneColumn(
            "file: no phone column found; columns seen: "
            + (", ".join(first) if first else "(none)")
            + ". Head the phone column phone, mobile, tel, טלפון or נייד.",
            details={"columns": first},
        )
    # Without a known header, the first row is one when its cell in the phone column is
    # words ("Cell", "Phone 1"), not a number, even a mistyped one.
    cell = first[phone_at] if len(first) > phone_at else ""
    header = not any(ch.isdigit() for ch in cell) or any(ch.isalpha() for ch in cell)
    if header:
        return _read(rows[1:], delimiter, first, phone_at, header=True)
    names = [f"column_{n}" for n in range(1, width + 1)]
    return _read(rows, delimiter, names, phone_at, header=False)


def sniff_delimiter(text: str) -> str:
    """``,``, ``;`` or tab: what ``csv.Sniffer`` finds, else the most frequent on line one."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS:  # a cut last line would mislead the sniffer
        sample = sample.rsplit("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first_line = sample.split("\n", 1)[0]
        counts = {d: first_line.count(d) for d in DELIMITERS}
        best = max(DELIMITERS, key=lambda d: counts[d])
        return best if counts[best] else ","


def _looks_like_phone(value: str, region: str) -> bool:
    return isinstance(normalize_phone(value, region), NormalizedPhone)


def _shaped_like_phone(value: str) -> bool:
    return (
        _PHONE_SHAPE.fullmatch(value) is not None
        and sum(ch.isdigit() for ch in value) >= _MIN_SHAPE_DIGITS
    )


def _column_by_values(rows: Sequence[list[str]], width: int, region: str) -> int | None:
    """The first column whose non-empty values mostly parse as phones (then: look like them)."""
    for test in (lambda v: _looks_like_phone(v, region), _shaped_like_phone):
        for at in range(width):
            values = [row[at] for row in rows if len(row) > at and row[at]]
            if values and sum(1 for v in values if test(v)) * 2 > len(values):
                return at
    return None


def _read(
    rows: Sequence[list[str]], delimiter: str, columns: list[str], phone_at: int, *, header: bool
) -> CsvImport:
    keys = [header_key(c) for c in columns] if header else []
    # The phone column (found by its values, say) is never also the name or the lead id.
    name_at = next((i for i, k in enumerate(keys) if k in _NAME_HEADERS and i != phone_at), None)
    lead_at = next((i for i, k in enumerate(keys) if k in _LEAD_ID_HEADERS and i != phone_at), None)
    special = {phone_at, name_at, lead_at}
    others = [(i, c) for i, c in enumerate(columns) if i not in special and c]
    imported: list[ImportedRow] = []
    for row in rows:
        size = len(row)
        phone = row[phone_at] if size > phone_at else ""
        if not phone:
            continue
        name = (row[name_at] or None) if name_at is not None and size > name_at else None
        lead_text = row[lead_at] if lead_at is not None and size > lead_at else ""
        lead_id = int(lead_text) if lead_text.isdecimal() and lead_text.isascii() else None
        if lead_id is not None and lead_id > MAX_LEAD_ID:
            lead_id = None
        # A blank cell is a value the recipient lacks, as if the column were not there.
        variables = {column: row[i] for i, column in others if i < size and row[i].strip()}
        imported.append(ImportedRow(phone, name, lead_id, variables))
    return CsvImport(imported, delimiter, header, columns, phone_at)
