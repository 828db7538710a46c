"""What clients send and get back about opt-outs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from wabroadcast.broadcasts.schemas import InvalidRecipient
from wabroadcast.domain.opt_outs import MAX_STOP_WORD_CHARS, MAX_STOP_WORDS, stop_word_key
from wabroadcast.domain.recipients import is_storable_text

MAX_PHONES = 100_000
# Numbers a reply lists (all are counted).
LISTED = 100
INVALID_LISTED = 20

Phone = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class OptOutCreate(BaseModel):
    """Numbers to opt out, in any spelling; ones without a country code are read in
    the tenant's region, as broadcast recipients are."""

    model_config = ConfigDict(extra="forbid")

    phones: list[Phone] = Field(min_length=1, max_length=MAX_PHONES)
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("phones")
    @classmethod
    def _storable_phones(cls, value: list[str]) -> list[str]:
        if not is_storable_text("\n".join(value)):
            raise ValueError("a phone holds a character that cannot be stored")
        return value

    @field_validator("reason")
    @classmethod
    def _storable_reason(cls, value: str | None) -> str | None:
        if value is not None and not is_storable_text(value):
            raise ValueError("holds a character that cannot be stored")
        return value


class OptOutAdded(BaseModel):
    """What an opt-out request changed."""

    success: Literal[True] = True
    added_count: int = Field(description="Numbers added to the list.")
    added: list[str] = Field(description=f"The first {LISTED} added, in E.164.")
    already_count: int = Field(description="Numbers that were on the list already.")
    invalid_count: int = Field(description="Inputs that are not phone numbers (not added).")
    invalid: list[InvalidRecipient] = Field(description=f"The first {INVALID_LISTED}.")
    skipped_count: int = Field(
        description="Recipients still queued in running or scheduled broadcasts that will "
        "not be sent to now (status `skipped`, error_code `opted_out`)."
    )


class OptOutOut(BaseModel):
    phone: str = Field(description="E.164.")
    source: Literal["api", "import", "inbound"] = Field(
        description="`api` (POST), `import` (a CSV file) or `inbound` (a stop word)."
    )
    reason: str | None
    created_at: datetime


class StopWords(BaseModel):
    """The texts that opt their sender out when an inbound message is one of them
    (compared without case, spaces or punctuation). ``null`` restores the defaults."""

    model_config = ConfigDict(extra="forbid")

    stop_words: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_WORD_CHARS)]] | None
    ) = Field(max_length=MAX_STOP_WORDS)

    @field_validator("stop_words")
    @classmethod
    def _meaningful(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for word in value:
            if not is_storable_text(word) or not stop_word_key(word):
                raise ValueError(f"{word!r} has no letters or digits to match")
        return value


class StopWordsOut(BaseModel):
    stop_words: list[str]
    default: bool = Field(description="True when these are the defaults.")
