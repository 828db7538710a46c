"""A broadcast from an uploaded CSV file: the multipart variant of ``POST /broadcasts``.

The file is read by ``domain.csv_import`` (the importer the dashboard and the CLI use)
with the tenant's region, becomes the same ``BroadcastCreate`` a JSON client would
post, and goes through ``create.create_broadcast``: same proof, same errors, same
idempotency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from wabroadcast.broadcasts import create
from wabroadcast.broadcasts.schemas import BroadcastCreate
from wabroadcast.broadcasts.views import CreateResult
from wabroadcast.context import AppContext
from wabroadcast.domain.csv_import import import_csv
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.tenants.service import TenantContext

MAX_ERRORS_LISTED = 50


@dataclass(frozen=True, slots=True)
class CsvUpload:
    """The multipart form: the message, the session (None: the default), the file, and
    the broadcast's quiet hours and their zone (None: the tenant's)."""

    message: str
    session_id: str | None
    data: bytes
    quiet_hours: str | None = None
    quiet_hours_zone: str | None = None


def upload_body(upload: CsvUpload, region: str) -> BroadcastCreate:
    """The JSON variant's body for this upload; a file or field it cannot use is a
    ``ValidationFailed`` (``NO_PHONE_COLUMN``, ``CSV_NOT_TEXT`` or ``VALIDATION_ERROR``).
    The file's other columns become each recipient's ``variables``.
    """
    imported = import_csv(upload.data, region)
    document: dict[str, Any] = {
        "message": upload.message,
        "recipients": [
            row.phone
            if row.name is None and row.lead_id is None and not row.variables
            else row.recipient()
            for row in imported.rows
        ],
    }
    if upload.session_id:
        document["session_id"] = upload.session_id
    if upload.quiet_hours:
        document["quiet_hours"] = upload.quiet_hours
    if upload.quiet_hours_zone:
        document["quiet_hours_zone"] = upload.quiet_hours_zone
    try:
        return BroadcastCreate.model_validate(document)
    except ValidationError as exc:
        raise _validation_failed(exc) from None


def _validation_failed(exc: ValidationError) -> ValidationFailed:
    """The envelope the JSON variant gives for the same problem (``api.errors``)."""
    errors = [
        {
            "field": ".".join(str(part) for part in err["loc"]) or "body",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()[:MAX_ERRORS_LISTED]
    ]
    first = errors[0]
    return ValidationFailed(
        f"{first['field']}: {first['message']}",
        details={"errors": errors, "error_count": exc.error_count()},
    )


async def create_broadcast_from_csv(
    ctx: AppContext, tenant: TenantContext, upload: CsvUpload, idempotency_key: str | None
) -> CreateResult:
    """Read the file (off the event loop) and create the broadcast like the JSON variant."""
    body = await asyncio.to_thread(upload_body, upload, tenant.default_region)
    return await create.create_broadcast(ctx, tenant, body, idempotency_key)
