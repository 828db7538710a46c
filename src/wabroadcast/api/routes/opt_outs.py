"""Opt-out routes: add numbers (JSON or a CSV file), list them, remove one, stop words.

``POST /api/whatsapp/opt-outs`` with ``multipart/form-data`` is served by
``upload_router`` (matched only for multipart bodies, included before ``router``),
as the broadcasts' CSV variant is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile

from wabroadcast.api.deps import Ctx, CurrentTenant
from wabroadcast.api.routes import tenant_errors
from wabroadcast.api.routes.broadcast_uploads import MultipartRoute
from wabroadcast.api.schemas import Page
from wabroadcast.domain.errors import (
    CsvNotText,
    NoPhoneColumn,
    OptOutNotFound,
    PayloadTooLarge,
)
from wabroadcast.opt_outs import service
from wabroadcast.opt_outs.schemas import (
    OptOutAdded,
    OptOutCreate,
    OptOutOut,
    StopWords,
    StopWordsOut,
)

PREFIX = "/api/whatsapp/opt-outs"
router = APIRouter(prefix=PREFIX, tags=["opt-outs"])
# Apart from the opt-outs' own paths, which end in a phone number.
stop_words_router = APIRouter(prefix="/api/whatsapp/stop-words", tags=["opt-outs"])
upload_router = APIRouter(
    prefix=PREFIX, tags=["opt-outs"], route_class=MultipartRoute, include_in_schema=False
)

CSV_UPLOAD_BODY = {
    "schema": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "A CSV file with a phone column (found as for broadcasts).",
            },
            "reason": {"type": "string", "description": "Kept with each number added."},
        },
    }
}

PhonePath = Annotated[
    str, Path(max_length=64, description="The number in any spelling (URL-encoded).")
]


@router.post(
    "",
    response_model=OptOutAdded,
    responses=tenant_errors(PayloadTooLarge, NoPhoneColumn, CsvNotText),
    summary="Opt numbers out: no broadcast messages them from now on",
    openapi_extra={"requestBody": {"content": {"multipart/form-data": CSV_UPLOAD_BODY}}},
)
async def add_opt_outs(body: OptOutCreate, ctx: Ctx, tenant: CurrentTenant) -> OptOutAdded:
    return await service.add_opt_outs(ctx, tenant, body.phones, body.reason)


@upload_router.post("", response_model=OptOutAdded)
async def import_opt_outs(
    ctx: Ctx,
    tenant: CurrentTenant,
    file: Annotated[UploadFile, File(description="A CSV file with a phone column.")],
    reason: Annotated[str | None, Form(max_length=500)] = None,
) -> OptOutAdded:
    return await service.import_opt_outs(ctx, tenant, await file.read(), reason or None)


@router.get(
    "",
    response_model=Page[OptOutOut],
    responses=tenant_errors(),
    summary="List opted-out numbers, newest first",
)
async def list_opt_outs(
    ctx: Ctx,
    tenant: CurrentTenant,
    phone: Annotated[
        str | None, Query(max_length=64, description="Only this number (any spelling).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the last page.")
    ] = None,
) -> Page[OptOutOut]:
    items, next_cursor = await service.list_opt_outs(
        ctx, tenant, phone=phone, cursor=cursor, limit=limit
    )
    return Page[OptOutOut](items=items, next_cursor=next_cursor)


@stop_words_router.get(
    "",
    response_model=StopWordsOut,
    responses=tenant_errors(),
    summary="The inbound texts that opt their sender out",
)
async def get_stop_words(ctx: Ctx, tenant: CurrentTenant) -> StopWordsOut:
    return await service.get_stop_words(ctx, tenant)


@stop_words_router.put(
    "",
    response_model=StopWordsOut,
    responses=tenant_errors(),
    summary="Set the inbound texts that opt their sender out (null: the defaults)",
)
async def put_stop_words(body: StopWords, ctx: Ctx, tenant: CurrentTenant) -> StopWordsOut:
    return await service.set_stop_words(ctx, tenant, body)


@router.delete(
    "/{phone}",
    status_code=204,
    responses=tenant_errors(OptOutNotFound),
    summary="Take a number off the opt-out list: later broadcasts message it again",
)
async def delete_opt_out(phone: PhonePath, ctx: Ctx, tenant: CurrentTenant) -> Response:
    await service.remove_opt_out(ctx, tenant, phone)
    return Response(status_code=204)
