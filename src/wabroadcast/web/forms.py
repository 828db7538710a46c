"""Reading the new-broadcast form: message, pasted numbers, an optional CSV upload.

Browsers send what a person typed, so this is where pasted text becomes a
recipient list and a problem with the upload becomes a sentence to show next
to the form, never a traceback or raw JSON.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from starlette.datastructures import FormData, UploadFile

from wabroadcast.domain.csv_import import ImportedRow, import_csv
from wabroadcast.domain.errors import AppError, CsvNotText, NoPhoneColumn, ValidationFailed
from wabroadcast.domain.recipients import RecipientInput

MAX_FIELD_BYTES = 16 * 1024 * 1024
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
_SEPARATORS = re.compile(r"[,;\r\n]+")
# The widest offsets in use are UTC-12:00 and UTC+14:00.
MAX_OFFSET_MINUTES = 14 * 60


class DraftProblem(AppError):
    """Something in the form a person must fix; ``text_key`` names the sentence to show.

    ``draft`` is what could be read of the form, so the page can show it again.
    """

    error_code = "FORM_INVALID"
    http_status = 400

    def __init__(self, text_key: str, *, draft: Draft | None = None, **values: object) -> None:
        super().__init__(text_key, details=dict(values))
        self.text_key = text_key
        self.values = values
        self.draft = draft


@dataclass(frozen=True, slots=True)
class Draft:
    """The form as submitted; what the broadcast would be made of."""

    message: str = ""
    pasted: str = ""
    idempotency_key: str | None = None
    csv_filename: str | None = None
    csv_rows: list[ImportedRow] = field(default_factory=list)
    # The schedule field as typed (a local date-time) and the browser's offset from UTC
    # in minutes (set by dashboard.js; empty without JavaScript: the time is UTC).
    send_at_local: str = ""
    send_at_offset: str = ""
    send_at: datetime | None = None
    # The broadcast's own quiet hours as typed (empty: the tenant's; "off": none).
    quiet_hours: str = ""

    def recipient_inputs(self) -> list[RecipientInput]:
        """Pasted numbers first, then the CSV's rows (their other columns as variables),
        in the order given."""
        pasted = [RecipientInput(phone) for phone in split_pasted(self.pasted)]
        uploaded = [
            RecipientInput(row.phone, row.lead_id, row.name, row.variables or None)
            for row in self.csv_rows
        ]
        return pasted + uploaded


def split_pasted(text: str) -> list[str]:
    """Numbers pasted one per line, or separated by commas or semicolons."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def scheduled_time(local: str, offset_minutes: str) -> datetime | None:
    """The instant a person chose in the schedule field: ``local`` (``2026-12-24T09:00``)
    at ``offset_minutes`` east of UTC (empty: UTC). None when no time was chosen; a
    ``DraftProblem`` when either cannot be read."""
    if not local.strip():
        return None
    try:
        moment = datetime.fromisoformat(local.strip())
        minutes = int(offset_minutes) if offset_minutes.strip() else 0
    except ValueError as exc:
        raise DraftProblem("error.send_at_unreadable") from exc
    if moment.tzinfo is not None or abs(minutes) > MAX_OFFSET_MINUTES:
        raise DraftProblem("error.send_at_unreadable")
    return moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))


async def read_draft(form: FormData, region: str) -> Draft:
    """The draft in ``form``; a CSV that is too large, not text or without a phone column
    is a ``DraftProblem``. ``region`` is the tenant's, for finding the phone column."""
    key = _text(form, "idempotency_key").strip()
    typed = Draft(
        # Browsers send a textarea's line breaks as CRLF; the message keeps plain newlines.
        message=_text(form, "message").replace("\r\n", "\n"),
        pasted=_text(form, "recipients"),
        idempotency_key=key or None,
        send_at_local=_text(form, "send_at")[:40],
        send_at_offset=_text(form, "send_at_offset")[:8],
        quiet_hours=_text(form, "quiet_hours")[:16].strip(),
    )
    try:
        typed = replace(typed, send_at=scheduled_time(typed.send_at_local, typed.send_at_offset))
    except DraftProblem as exc:
        exc.draft = typed
        raise
    upload = form.get("csv_file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return typed
    without_rows = replace(typed, csv_filename=upload.filename)
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise DraftProblem(
            "error.csv_too_large", draft=without_rows, mb=MAX_UPLOAD_BYTES // (1024 * 1024)
        )
    try:
        imported = await asyncio.to_thread(import_csv, data, region)
    except CsvNotText as exc:
        raise DraftProblem("error.csv_encoding", draft=without_rows) from exc
    except NoPhoneColumn as exc:
        columns = ", ".join(str(c) for c in exc.details.get("columns", [])) or "-"
        raise DraftProblem(
            "error.csv_no_phone_column", draft=without_rows, columns=columns
        ) from exc
    except ValidationFailed as exc:
        detail = str(exc.details.get("reason", exc.message))
        raise DraftProblem("error.csv_unreadable", draft=without_rows, detail=detail) from exc
    return replace(without_rows, csv_rows=imported.rows)
