"""``POST /api/whatsapp/broadcasts`` with ``multipart/form-data``: a CSV file instead of JSON.

The same path and method as the JSON variant (``routes/broadcasts.py``): this route
matches only requests whose body is ``multipart/form-data``, and is included before
the JSON route, so a JSON request never sees it and the JSON variant (and its OpenAPI
operation) is unchanged. It is left out of the OpenAPI document, where one path and
method hold one operation.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.broadcasts import uploads
from wabroadcast.broadcasts.schemas import BroadcastAccepted
from wabroadcast.domain.idempotency import IDEMPOTENCY_HEADER_PATTERN


def is_multipart(scope: Scope) -> bool:
    """True when the request's ``Content-Type`` is ``multipart/form-data``."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type == b"multipart/form-data"
    return False


class MultipartRoute(APIRoute):
    """An API route that only matches ``multipart/form-data`` requests."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL and not is_multipart(scope):
            return Match.NONE, {}
        return match, child_scope


router = APIRouter(
    prefix="/api/whatsapp/broadcasts",
    tags=["broadcasts"],
    route_class=MultipartRoute,
    include_in_schema=False,
)


@router.post("", status_code=202, response_model=BroadcastAccepted)
async def create_broadcast_from_csv(
    ctx: Ctx,
    tenant: CurrentTenant,
    response: Response,
    file: Annotated[UploadFile, File(description="The recipients: a CSV file.")],
    # Checked by BroadcastCreate, like the JSON variant's fields.
    message: Annotated[str, Form()],
    session_id: Annotated[str | None, Form()] = None,
    quiet_hours: Annotated[str | None, Form()] = None,
    quiet_hours_zone: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_HEADER_PATTERN)
    ] = None,
) -> BroadcastAccepted:
    upload = uploads.CsvUpload(
        message, session_id or None, await file.read(), quiet_hours, quiet_hours_zone
    )
    result = await uploads.create_broadcast_from_csv(ctx, tenant, upload, idempotency_key)
    response.status_code = result.http_status
    if result.body.idempotent:
        response.headers["Idempotent-Replayed"] = "true"
    return result.body
