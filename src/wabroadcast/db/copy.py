"""PostgreSQL COPY for bulk writes on hot paths: one round trip, no per-row statement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def copy_text(value: str) -> str:
    """A value in PostgreSQL's COPY text format (backslash escapes for the separators)."""
    return value.translate(_COPY_ESCAPES)


def copy_value(value: object) -> str:
    """Any column value in COPY text format: NULL, booleans, timestamps, numbers, text."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    return copy_text(str(value))


async def copy_lines(
    session: AsyncSession, table: str, columns: Sequence[str], lines: Iterable[str]
) -> None:
    """COPY already formatted lines (tab-separated, newline-terminated) into ``table``."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    async with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        await copy.write("".join(lines).encode("utf-8"))


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """COPY rows of Python values, in ``columns`` order, into ``table``.

    Rows written together often share timestamps; each distinct one is
    formatted once.
    """
    stamps: dict[datetime, str] = {}

    def cell(value: object) -> str:
        if isinstance(value, datetime):
            text = stamps.get(value)
            if text is None:
                text = stamps[value] = copy_value(value)
            return text
        return copy_value(value)

    lines = ("\t".join(map(cell, row)) + "\n" for row in rows)
    await copy_lines(session, table, columns, lines)
