"""PostgreSQL COPY for bulk writes on hot paths: one round trip, no per-row statement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """A value in PostgreSQL's COPY text format (backslash escapes for the separators)."""
    return value.translate(_COPY_ESCAPES)


@asynccontextmanager
async def _copy_in(session: AsyncSession, table: str, columns: Sequence[str]) -> AsyncIterator[Any]:
    """The driver's COPY ... FROM STDIN on the session's connection (in its transaction)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    async with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        yield copy


async def copy_lines(
    session: AsyncSession, table: str, columns: Sequence[str], lines: Iterable[str]
) -> None:
    """COPY already formatted lines (tab-separated, newline-terminated) into ``table``."""
    async with _copy_in(session, table, columns) as copy:
        await copy.write("".join(lines).encode("utf-8"))


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """COPY rows of Python values, in ``columns`` order, into ``table``.

    The driver formats each row (in C with psycopg's binary package), which
    costs a fraction of formatting the text here.
    """
    async with _copy_in(session, table, columns) as copy:
        for row in rows:
            await copy.write_row(row)
