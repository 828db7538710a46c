"""Shapes shared by every route: the error envelope and cursor pages."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ErrorEnvelope(BaseModel):
    """Every error a client can get: a stable code, a sentence, and details to act on."""

    success: Literal[False] = False
    error_code: str = Field(examples=["NO_VALID_RECIPIENTS"])
    message: str
    message_en: str | None = Field(
        default=None, description="English text when `message` is in another language."
    )
    details: dict[str, Any] = Field(default_factory=dict)


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``?cursor=`` for the next one."""

    items: list[T]
    next_cursor: str | None
