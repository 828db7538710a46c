"""The CSV importer on the files people actually have (domain/csv_import)."""

from __future__ import annotations

import pytest

from wabroadcast.domain.csv_import import ImportedRow, header_key, import_csv, sniff_delimiter
from wabroadcast.domain.errors import CsvNotText, NoPhoneColumn, ValidationFailed


def rows(data: bytes | str, region: str = "IL") -> list[ImportedRow]:
    return import_csv(data, region).rows


def test_a_name_phone_number_header_reads_the_phones_not_the_names() -> None:
    # The first shape: it used to read the names as phones.
    result = import_csv("Name,Phone Number\nנועה,052-345-6789\nDan,0533456789\n", "IL")
    assert (result.delimiter, result.has_header, result.phone_column) == (",", True, 1)
    assert result.rows == [
        ImportedRow("052-345-6789", "נועה", None, {}),
        ImportedRow("0533456789", "Dan", None, {}),
    ]


def test_semicolons_with_lead_ids_and_other_columns_as_variables() -> None:
    text = "name;phone;lead_id;City;Plan\nNoa;052-345-6789;7;Haifa;gold\nDan;0533456789;x;TLV;\n"
    result = import_csv(text, "IL")
    assert result.delimiter == ";"
    assert result.rows == [
        ImportedRow("052-345-6789", "Noa", 7, {"City": "Haifa", "Plan": "gold"}),
        ImportedRow("0533456789", "Dan", None, {"City": "TLV"}),  # blank: lacking
    ]


def test_hebrew_headers() -> None:
    text = "שם מלא,טלפון נייד,עיר\r\nנועה,052-345-6789,חיפה\r\n"
    assert rows(text) == [ImportedRow("052-345-6789", "נועה", None, {"עיר": "חיפה"})]
    assert rows("שם,נייד\nדן,0533456789\n") == [ImportedRow("0533456789", "דן", None, {})]
    assert rows("מס' טלפון;שם\n0533456789;דן\n")[0].phone == "0533456789"


def test_tab_separated() -> None:
    result = import_csv("Full Name\tMobile\tLead ID\nNoa Levi\t+972 52 345 6789\t12\n", "IL")
    assert result.delimiter == "\t"
    assert result.rows == [ImportedRow("+972 52 345 6789", "Noa Levi", 12, {})]


@pytest.mark.parametrize(
    "header",
    ["phone", "PHONE", " Phone Number ", "phone_number", "Phone-No.", "Tel", "טלפון", "נייד"],
)
def test_phone_headers_ignore_case_spaces_and_punctuation(header: str) -> None:
    assert rows(f"name,{header}\nNoa,0523456789\n") == [ImportedRow("0523456789", "Noa", None, {})]


def test_header_keys() -> None:
    assert header_key(" Phone  Number ") == header_key("phone_number") == "phonenumber"
    assert header_key("\ufeffמס' טלפון") == "מסטלפון"


def test_utf8_with_and_without_a_bom() -> None:
    text = "name,phone\nנועה,0523456789\n"
    expected = [ImportedRow("0523456789", "נועה", None, {})]
    assert rows(text.encode("utf-8")) == expected
    assert rows(b"\xef\xbb\xbf" + text.encode("utf-8")) == expected


def test_utf16_le_with_a_bom_from_excel() -> None:
    # Excel's "Unicode Text": UTF-16 LE with its BOM, tab-separated, CRLF.
    data = b"\xff\xfe" + "שם\tטלפון\r\nנועה\t052-345-6789\r\n".encode("utf-16-le")
    result = import_csv(data, "IL")
    assert result.delimiter == "\t"
    assert result.rows == [ImportedRow("052-345-6789", "נועה", None, {})]
    big_endian = b"\xfe\xff" + "phone\n0523456789\n".encode("utf-16-be")
    assert rows(big_endian) == [ImportedRow("0523456789", None, None, {})]


def test_bytes_that_are_not_text_are_refused() -> None:
    with pytest.raises(CsvNotText) as caught:
        import_csv("phone\n0502345678\nשם".encode("cp1255"), "IL")
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.error_code == "CSV_NOT_TEXT"
    assert caught.value.http_status == 422


def test_headerless_numbers() -> None:
    result = import_csv("0502345678\n\n+972 52 345 6789\n052-345-6789\n", "IL")
    assert not result.has_header
    assert [r.phone for r in result.rows] == ["0502345678", "+972 52 345 6789", "052-345-6789"]
    # Without a header, the other cells are kept under their column's number.
    assert rows("Noa,0523456789\nDan,+972533456789\n") == [
        ImportedRow("0523456789", None, None, {"column_1": "Noa"}),
        ImportedRow("+972533456789", None, None, {"column_1": "Dan"}),
    ]


def test_mistyped_numbers_still_make_the_phone_column() -> None:
    # No value parses, but they look like numbers: each is reported invalid later,
    # not the whole file as having no phone column.
    assert [r.phone for r in rows("050-123\n123-456-789-000-111-2222\n0000000\n")] == [
        "050-123",
        "123-456-789-000-111-2222",
        "0000000",
    ]


def test_no_phone_column_names_the_columns_seen() -> None:
    with pytest.raises(NoPhoneColumn) as caught:
        import_csv("Name,Email,City\nNoa,noa@example.com,Haifa\nDan,dan@example.com,TLV\n", "IL")
    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert (error.error_code, error.http_status) == ("NO_PHONE_COLUMN", 422)
    assert error.details == {"columns": ["Name", "Email", "City"]}
    assert "no phone column found" in error.message
    assert "Name, Email, City" in error.message


def test_phone_column_found_by_its_values_when_headers_are_unknown() -> None:
    text = "Client;Cell#;Notes\nNoa;0523456789;vip\nDan;+972533456789;\nEli;053 456 7890;x\n"
    result = import_csv(text, "IL")
    assert (result.has_header, result.phone_column) == (True, 1)
    assert result.rows[0] == ImportedRow(
        "0523456789", None, None, {"Client": "Noa", "Notes": "vip"}
    )
    assert [r.phone for r in result.rows] == ["0523456789", "+972533456789", "053 456 7890"]


def test_the_region_decides_which_national_numbers_parse() -> None:
    # A column of US national numbers is found with region US. With IL they do not
    # parse, but they are still shaped like numbers, so the column is still found.
    text = "Who,Digits\nAmy,(201) 555-0123\nBob,(212) 555-0198\n"
    assert [r.phone for r in rows(text, "US")] == ["(201) 555-0123", "(212) 555-0198"]
    assert import_csv(text, "US").phone_column == 1


def test_a_phone_column_beats_an_earlier_column_of_numbers() -> None:
    # lead ids look numeric, but the header says which column holds the phones.
    assert rows("lead_id,phone\n972523456789,0533456789\n") == [
        ImportedRow("0533456789", None, 972523456789, {})
    ]


def test_quoted_cells_keep_their_delimiters() -> None:
    text = 'name,phone\n"Levi, Noa",0523456789\n"Cohen; Dan",0533456789\n'
    assert [r.name for r in rows(text)] == ["Levi, Noa", "Cohen; Dan"]


def test_rows_without_a_phone_and_blank_lines_are_skipped() -> None:
    assert rows("name,phone\nNoa,\n\n,,\nDan,0533456789\n") == [
        ImportedRow("0533456789", "Dan", None, {})
    ]
    assert rows("") == []
    assert rows("\ufeff") == []
    assert rows("phone\n") == []


def test_the_recipient_object_carries_the_other_columns_as_variables() -> None:
    row = ImportedRow("0523456789", "Noa", 7, {"City": "Haifa"})
    assert row.recipient() == {
        "phone": "0523456789",
        "lead_id": 7,
        "name": "Noa",
        "variables": {"City": "Haifa"},
    }
    assert ImportedRow("0523456789", None, None, {}).recipient() == {"phone": "0523456789"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b\n1,2\n", ","),
        ("a;b\n1;2\n", ";"),
        ("a\tb\n1\t2\n", "\t"),
        ("0502345678\n0523456789\n", ","),
        ("phone\n+972 52 345 6789\n", ","),
    ],
)
def test_the_delimiter_is_one_of_comma_semicolon_tab(text: str, expected: str) -> None:
    assert sniff_delimiter(text) == expected


def test_text_the_csv_reader_cannot_split_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        import_csv(b'phone\n"' + b"x" * 200_000, "IL")
    assert caught.value.error_code == "VALIDATION_ERROR"
    assert caught.value.message.startswith("file: not a CSV file (field larger than field limit")


def test_a_column_found_by_its_values_is_only_the_phone() -> None:
    # "איש קשר" (contact) is a name header, but here it holds the numbers.
    assert rows("איש קשר,שם\n0523456789,נועה\n") == [ImportedRow("0523456789", "נועה", None, {})]


def test_a_headerless_file_starting_with_the_name_tal_is_not_a_header() -> None:
    assert rows("טל,0523456789\nדן,0533456789\n") == [
        ImportedRow("0523456789", None, None, {"column_1": "טל"}),
        ImportedRow("0533456789", None, None, {"column_1": "דן"}),
    ]
