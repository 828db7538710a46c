"""Request and response bodies of the broadcast API; ORM rows never leave the service."""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from wabroadcast.domain.quiet_hours import OFF, InvalidQuietHours, parse_window
from wabroadcast.domain.recipients import first_unstorable, is_storable_text
from wabroadcast.domain.status import BroadcastStatus, RecipientStatus

MAX_MESSAGE_CHARS = 4096
MAX_VARIABLES = 50
MAX_VARIABLE_NAME = 64
MAX_VARIABLE_CHARS = 1000

UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired surrogates"
UNSTORABLE_JSON_MESSAGE = (
    "must not contain NUL characters, unpaired surrogates, NaN or infinite numbers"
)

# Format characters (zero-width space, joiners, BOM, direction marks), separators
# and controls: a message made only of these shows nothing.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc"})


def has_visible_text(text: str) -> bool:
    category = unicodedata.category
    return any(category(char) not in _INVISIBLE_CATEGORIES for char in text)


def _storable(value: str) -> str:
    if not is_storable_text(value):
        raise ValueError(UNSTORABLE_MESSAGE)
    return value


# Meta's components nest a few levels (a carousel card's parameters about ten); a
# deeper document is no template, and would exhaust the recursion of what walks it.
MAX_COMPONENTS_DEPTH = 32


def _json_problem(value: Any) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored and sent on, or None when it can.

    Refused: a string (key or value) no column can hold, a NaN or infinite number
    (Python's JSON reader takes ``NaN``, ``Infinity`` and ``1e400``; PostgreSQL's
    json and JSON itself have no such numbers), and nesting past MAX_COMPONENTS_DEPTH.
    A loop, not recursion, so no depth of input can exhaust the stack here.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not is_storable_text(item):
                return UNSTORABLE_JSON_MESSAGE
        elif isinstance(item, float):
            if not math.isfinite(item):
                return UNSTORABLE_JSON_MESSAGE
        elif isinstance(item, dict | list):
            if depth >= MAX_COMPONENTS_DEPTH:
                return f"must not nest more than {MAX_COMPONENTS_DEPTH} levels deep"
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                item = item.values()
            pending.extend((child, depth + 1) for child in item)
    return None


class RecipientIn(BaseModel):
    """A recipient with CRM context; a bare phone string is accepted too."""

    model_config = ConfigDict(extra="forbid", strict=True)

    phone: StrictStr = Field(examples=["+972502345678"])
    # 2**53 - 1: the largest integer every JSON client (JavaScript included) keeps exact.
    lead_id: int | None = Field(default=None, ge=0, le=2**53 - 1)
    name: str | None = Field(default=None, max_length=200)
    variables: (
        dict[
            Annotated[str, StringConstraints(min_length=1, max_length=MAX_VARIABLE_NAME)],
            Annotated[str, StringConstraints(max_length=MAX_VARIABLE_CHARS)] | int | float | bool,
        ]
        | None
    ) = Field(
        default=None,
        max_length=MAX_VARIABLES,
        description=(
            "Free fields for the message: `{{variables.city}}` or `{{city}}` in it is "
            "replaced by this recipient's `city`."
        ),
        examples=[{"city": "Haifa", "order": "A-1042"}],
    )

    # No per-field validators here: BroadcastCreate scans every recipient at once,
    # which keeps a 100,000-recipient request cheap.


class TemplateIn(BaseModel):
    """A provider message template (Meta's Cloud API), sent instead of the text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$", examples=["order_update"]
    )
    language: str = Field(
        pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="The template's language code, e.g. he or en_US.",
        examples=["en_US"],
    )
    components: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=20,
        description="Meta's components (header, body and button parameters), as Meta takes them.",
    )

    @field_validator("components")
    @classmethod
    def _components_storable(cls, value: list[dict[str, Any]] | None) -> Any:
        problem = None if value is None else _json_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class BroadcastCreate(BaseModel):
    # Strict: a number where text is expected (or "true" for a boolean) is a
    # client bug to report, not something to guess at.
    model_config = ConfigDict(extra="forbid", strict=True)

    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description=(
            "The text, the same for everyone or personal: `{{name}}`, `{{lead_id}}`, "
            "`{{variables.x}}` (or `{{x}}`) are filled in per recipient, "
            '`{{name|default("friend")}}` gives a default, `{% if x %}…{% endif %}` a '
            "condition (a sandboxed Jinja2 template: no loops or calls)."
        ),
        examples=['Hello {{name|default("friend")}}, your order {{order}} is ready'],
    )
    recipients: list[StrictStr | RecipientIn] = Field(
        description="Phone numbers (any common spelling) or recipient objects."
    )
    session_id: str | None = Field(
        default=None, max_length=64, description="Defaults to the tenant's default session."
    )
    template: TemplateIn | None = Field(
        default=None,
        description=(
            "Send this approved template instead of the text (Cloud API sessions; required "
            "outside the 24-hour window). `message` is still what the dashboard shows."
        ),
    )
    allow_duplicate: bool = Field(
        default=False,
        description="Send even if an identical broadcast was accepted in the last 10 minutes.",
    )
    strict_variables: bool = Field(
        default=False,
        description=(
            "Refuse the broadcast (422 MISSING_VARIABLES, nothing stored) when the message "
            "uses a field some recipient lacks, instead of sending it empty."
        ),
    )
    send_at: AwareDatetime | None = Field(
        default=None,
        # An ISO 8601 string is what JSON has for a time; strict mode would refuse it.
        strict=False,
        description=(
            "Send at this time (ISO 8601 with an offset, e.g. 2026-12-24T09:00:00+02:00) "
            "instead of at once: the broadcast waits as `scheduled`. Not in the past "
            "(a few seconds' grace), at most 90 days ahead."
        ),
        examples=["2026-12-24T09:00:00+02:00"],
    )

    quiet_hours: str | None = Field(
        default=None,
        max_length=16,
        description=(
            "This broadcast's quiet hours instead of the tenant's: `HH:MM-HH:MM` (no send "
            "starts from the start, inclusive, to the end, exclusive; e.g. 21:00-08:30 "
            "crosses midnight) or `off` for none. Absent: the tenant's (`/api/whatsapp/settings`)."
        ),
        examples=["21:00-08:30"],
    )
    quiet_hours_zone: Literal["tenant", "recipient"] | None = Field(
        default=None,
        description=(
            "Where the quiet hours are read: `tenant` (default, the tenant's `time_zone`) or "
            "`recipient` (each number's zone from its country code; a country with several "
            "zones uses its primary one)."
        ),
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == OFF:
            return None if value is None else OFF
        try:
            return str(parse_window(value))
        except InvalidQuietHours as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("send_at")
    @classmethod
    def _send_at_utc(cls, value: datetime | None) -> datetime | None:
        # One instant, one spelling: the same time with another offset is the same request.
        return None if value is None else value.astimezone(UTC)

    @field_validator("message")
    @classmethod
    def _message_not_blank(cls, value: str) -> str:
        _storable(value)
        if not has_visible_text(value):  # whitespace, zero-width and direction marks only
            raise ValueError("message must contain visible text")
        return value

    @field_validator("session_id")
    @classmethod
    def _session_id_storable(cls, value: str | None) -> str | None:
        return value if value is None else _storable(value)

    @field_validator("recipients")
    @classmethod
    def _recipients_storable(cls, value: list[str | RecipientIn]) -> list[str | RecipientIn]:
        """Refuse, before anything is stored, text no column can hold or reply can echo."""
        found = first_unstorable(value)
        if found is None:
            return value
        index, field = found
        item = value[index]
        loc: tuple[int | str, ...] = (index,) if field is None else (index, field)
        bad = item if isinstance(item, str) else getattr(item, field or "phone")
        raise ValidationError.from_exception_data(
            "BroadcastCreate",
            [
                InitErrorDetails(
                    type=PydanticCustomError("unstorable_text", UNSTORABLE_MESSAGE),
                    loc=loc,
                    input=bad,
                )
            ],
        )


class RecipientItem(BaseModel):
    phone: str
    lead_id: int | None
    status: RecipientStatus
    message_preview: str = Field(
        description="The first 100 characters of the text this recipient gets."
    )


class MissingVariable(BaseModel):
    variable: str = Field(examples=["name"])
    count: int = Field(description="Recipients who lack it (they get it empty).")
    phones: list[str] = Field(description="The first 5 of them.")


class InvalidRecipient(BaseModel):
    input: str
    reason: str


class BroadcastAccepted(BaseModel):
    """The proof that a broadcast was queued: real stored rows, counted."""

    success: Literal[True] = True
    broadcast_id: int
    job_id: str
    status: BroadcastStatus
    session_id: str
    total_recipients: int = Field(description="Valid, unique recipients stored.")
    queued_count: int = Field(description="Recipients still waiting to be sent.")
    sent_count: int
    invalid_recipients_count: int
    invalid_recipients: list[InvalidRecipient] = Field(description="At most 20 examples.")
    duplicates_removed: int
    opted_out_count: int = Field(
        default=0, description="Valid numbers left out because they opted out (not queued)."
    )
    opted_out: list[str] = Field(
        default_factory=list, description="The first 20 of them, in E.164."
    )
    missing_variables: list[MissingVariable] = Field(
        default_factory=list,
        description="Fields the message uses that some recipients lack, most often first.",
    )
    items: list[RecipientItem] = Field(description="The first 100 stored recipients.")
    idempotent: bool = Field(description="True when this returns an earlier broadcast.")
    connection_check: Literal["connected", "unknown"]
    send_at: datetime | None = Field(
        default=None, description="When a `scheduled` broadcast is queued (None: at once)."
    )


class BroadcastOut(BaseModel):
    broadcast_id: int
    status: BroadcastStatus
    status_reason: str | None
    message: str
    template: dict[str, Any] | None = None
    session_id: str
    total_recipients: int
    queued_count: int = Field(description="Recipients queued or being sent.")
    sent_count: int = Field(description="Recipients sent, delivered or read.")
    delivered_count: int = Field(description="Recipients delivered or read.")
    read_count: int
    failed_count: int
    cancelled_count: int
    skipped_count: int = Field(
        default=0, description="Queued recipients not sent because their number opted out."
    )
    invalid_recipients_count: int
    duplicates_removed: int
    opted_out_count: int = Field(
        default=0, description="Numbers left out at creation because they had opted out."
    )
    reply_count: int = Field(
        default=0,
        description=(
            "Recipients who wrote back within WABROADCAST_REPLY_WINDOW (72 h) of their send."
        ),
    )
    created_at: datetime
    send_at: datetime | None = Field(
        default=None, description="When a `scheduled` broadcast is queued (None: at once)."
    )
    quiet_hours: str | None = Field(
        default=None,
        description=(
            "This broadcast's own quiet hours (`HH:MM-HH:MM` or `off`); None: the tenant's."
        ),
    )
    quiet_hours_zone: str | None = Field(
        default=None, description="`recipient` when quiet hours are read in each recipient's zone."
    )
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    estimated_finish_at: datetime | None = Field(
        default=None,
        description=(
            "When an active broadcast should have sent its last recipient: its session's "
            "interval between sends times the recipients still queued of the broadcasts "
            "ahead of it on that session plus its own (a scheduled one from `send_at`), "
            "pushed past each quiet period it runs into. "
            "None when finished, cancelled, paused or the session is not connected."
        ),
    )
    waiting_reason: str | None = Field(
        default=None,
        description=(
            "Why an active broadcast is not sending now (None: it is sending): "
            "`scheduled` (waits for `send_at`), `behind_broadcast` (an older broadcast "
            "on the same session goes first, see `waiting_for_broadcast_id`), `paused`, "
            "`not_connected` (the session's WhatsApp is not connected), `pace` (the "
            "session's next allowed send is more than 10 seconds away), `quiet_hours` "
            "(its quiet hours hold now; sending resumes at their end), `daily_cap` (the "
            "session sent its day's cap; sending resumes the next day in the tenant's zone)."
        ),
    )
    waiting_for_broadcast_id: int | None = Field(
        default=None,
        description="With `behind_broadcast`: the broadcast the session is sending first.",
    )


class RecipientOut(BaseModel):
    recipient_id: int
    phone: str
    lead_id: int | None
    name: str | None
    rendered_message: str = Field(description="Exactly the text sent to this recipient.")
    status: RecipientStatus
    attempts: int
    error_code: str | None
    error_message: str | None
    provider_message_id: str | None = Field(
        default=None, description="The provider's id of the message sent (Meta's wamid)."
    )
    queued_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    replied_at: datetime | None = Field(
        default=None,
        description="When the number first wrote back within the reply window of the send.",
    )
    reply_text: str | None = Field(
        default=None, description="That first reply's text (its first 1,000 characters)."
    )
    updated_at: datetime


class RetryFailedIn(BaseModel):
    """Which failed recipients to send again (``domain.failures``)."""

    model_config = ConfigDict(extra="forbid")

    error_codes: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = (
        Field(
            default=None,
            max_length=100,
            description=(
                "Only recipients that failed with one of these codes; absent or empty: every "
                "code that may pass. Codes that never pass (NOT_ON_WHATSAPP, INVALID_NUMBER, "
                "...) are never sent again; UNKNOWN_OUTCOME only when named."
            ),
            examples=[["RATE_LIMITED", "SERVER_ERROR"]],
        )
    )


class RetryFailedOut(BaseModel):
    requeued: int = Field(description="Failed recipients queued again.")
