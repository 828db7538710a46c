"""``column IN (values)`` that stays one short statement however many values there are.

SQLAlchemy renders an IN list as one placeholder per value, so every batch size
is a new statement text that the driver converts and the server parses again.
On PostgreSQL the values go as one array parameter instead (``= ANY(:values)``):
the text never changes, whatever the batch size. SQLite keeps the IN list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(
    session: AsyncSession, column: InstrumentedAttribute[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """``column`` equals one of ``values``, as an array parameter on PostgreSQL."""
    if is_postgres(session):
        return column == any_(literal(list(values), ARRAY(column.type)))
    return column.in_(values)
