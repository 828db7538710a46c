"""Provider webhooks: receipts posted by a WhatsApp provider, not by a tenant.

No API key here: a provider cannot hold one, and a tenant must not be able to
forge receipts with theirs. Each provider authenticates by its own signature
scheme (the simulator: an HMAC of the raw body with the session's webhook
secret), so the handler reads the raw body itself, bounded in size, and hands
it to the service untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from wabroadcast.api.deps import Ctx
from wabroadcast.api.schemas import ErrorEnvelope
from wabroadcast.receipts import service
from wabroadcast.receipts.simulator_webhook import (
    SESSION_HEADER,
    SIGNATURE_HEADER,
    SimulatorWebhookBody,
)

router = APIRouter(prefix="/api/whatsapp/webhooks", tags=["webhooks"])

MAX_BODY_BYTES = 1024 * 1024


class WebhookAccepted(BaseModel):
    success: Literal[True] = True
    applied: int
    ignored: int
    unknown: int


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its local ``$defs`` references inlined.

    Pydantic puts nested models under ``$defs``, which an OpenAPI document does
    not resolve inside an operation, so the request body is described inline.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


_OPENAPI_EXTRA: dict[str, Any] = {
    "parameters": [
        {
            "name": SESSION_HEADER,
            "in": "header",
            "required": False,
            "description": "Provider `simulator`: the WhatsApp session the receipts belong to.",
            "schema": {"type": "string", "maxLength": 64},
        },
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": False,
            "description": (
                "Provider `simulator`: `sha256=<hex HMAC-SHA256 of the raw body, keyed with "
                "the session's webhook secret>`."
            ),
            "schema": {"type": "string", "maxLength": 200},
        },
    ],
    "requestBody": {
        "required": True,
        "description": "Provider `simulator`: up to 1000 receipts; at most 1 MiB.",
        "content": {
            "application/json": {"schema": _inline_defs(SimulatorWebhookBody.model_json_schema())}
        },
    },
}


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> service.WebhookTooLarge:
    return service.WebhookTooLarge(
        f"A webhook body is at most {limit} bytes", details={"max_bytes": limit}
    )


@router.post(
    "/{provider}",
    response_model=WebhookAccepted,
    responses={
        400: _error("Correctly signed but malformed body (WEBHOOK_MALFORMED)"),
        401: _error("Missing or bad signature, or unknown session (WEBHOOK_UNAUTHORIZED)"),
        404: _error("No webhook for this provider (PROVIDER_NOT_FOUND)"),
        413: _error("Body above 1 MiB (PAYLOAD_TOO_LARGE)"),
        422: _error("Invalid path (VALIDATION_ERROR)"),
    },
    openapi_extra=_OPENAPI_EXTRA,
    summary="Receipts from a WhatsApp provider (delivered, read, failed)",
    description=(
        "Called by the provider, authenticated by its signature, never by an API key. "
        "Receipts for unknown message ids are accepted and counted as `unknown`; "
        "repeated or stale receipts change nothing and count as `ignored`."
    ),
)
async def receive_webhook(
    provider: Annotated[
        str,
        Path(max_length=32, description="The provider, e.g. `simulator`.", examples=["simulator"]),
    ],
    request: Request,
    ctx: Ctx,
) -> WebhookAccepted:
    service.require_webhook_provider(provider)
    body = await _read_body(request, MAX_BODY_BYTES)
    result = await service.handle_webhook(ctx, provider, request.headers, body)
    return WebhookAccepted(applied=result.applied, ignored=result.ignored, unknown=result.unknown)
