"""Provider webhooks: receipts posted by a WhatsApp provider, not by a tenant.

No API key here: a provider cannot hold one, and a tenant must not be able to
forge receipts with theirs. Each provider authenticates by its own scheme (an
HMAC of the raw body, a per-session header; see docs/providers.md), so the
handler reads the raw body itself, bounded in size, and hands it to the
service untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from wabroadcast.api.deps import Ctx
from wabroadcast.api.routes import error_responses
from wabroadcast.domain.errors import (
    Forbidden,
    PayloadTooLarge,
    ProviderNotFound,
    ValidationFailed,
    WebhookMalformed,
    WebhookUnauthorized,
)
from wabroadcast.providers.registry import PLUGINS
from wabroadcast.receipts import webhooks as service

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


def _openapi_extra() -> dict[str, Any]:
    """Each provider's headers and body, as its plug-in describes them."""
    webhooks = [(p.kind, p.webhook) for p in PLUGINS.values() if p.webhook is not None]
    parameters = [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": f"Provider `{kind}`: {meaning}",
            "schema": {"type": "string", "maxLength": 200},
        }
        for kind, webhook in webhooks
        for name, meaning in webhook.headers.items()
    ]
    bodies = [
        _inline_defs(webhook.body_model.model_json_schema())
        for _, webhook in webhooks
        if webhook.body_model is not None
    ]
    return {
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "description": "The provider's own document, as it posts it; at most 1 MiB.",
            "content": {"application/json": {"schema": {"anyOf": [*bodies, {"type": "object"}]}}},
        },
    }


_OPENAPI_EXTRA = _openapi_extra()
ProviderPath = Annotated[
    str, Path(max_length=32, description="The provider, e.g. `cloud_api`.", examples=["cloud_api"])
]
KeyPath = Annotated[
    str, Path(max_length=128, description="The session's webhook key (per-session URLs).")
]
_RESPONSES = error_responses(
    WebhookMalformed, WebhookUnauthorized, ProviderNotFound, PayloadTooLarge, ValidationFailed
)
_DESCRIPTION = (
    "Called by the provider, authenticated by its signature, never by an API key. "
    "Receipts for unknown message ids are accepted, counted as `unknown` and kept for "
    "10 minutes in case their send is recorded meanwhile; repeated or stale receipts "
    "change nothing and count as `ignored`."
)


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


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"A webhook body is at most {limit} bytes", details={"max_bytes": limit})


async def _receive(
    ctx: Ctx, provider: str, request: Request, path_key: str | None
) -> WebhookAccepted:
    service.webhook_of(provider)
    body = await _read_body(request, MAX_BODY_BYTES)
    result = await service.handle_webhook(ctx, provider, request.headers, body, path_key)
    return WebhookAccepted(applied=result.applied, ignored=result.ignored, unknown=result.unknown)


@router.post(
    "/{provider}",
    response_model=WebhookAccepted,
    responses=_RESPONSES,
    openapi_extra=_OPENAPI_EXTRA,
    summary="Receipts from a WhatsApp provider (delivered, read, failed)",
    description=_DESCRIPTION,
)
async def receive_webhook(provider: ProviderPath, request: Request, ctx: Ctx) -> WebhookAccepted:
    return await _receive(ctx, provider, request, None)


@router.post(
    "/{provider}/{key}",
    response_model=WebhookAccepted,
    responses=_RESPONSES,
    openapi_extra=_OPENAPI_EXTRA,
    summary="Receipts from a provider that calls one URL per session",
    description=_DESCRIPTION,
)
async def receive_session_webhook(
    provider: ProviderPath, key: KeyPath, request: Request, ctx: Ctx
) -> WebhookAccepted:
    return await _receive(ctx, provider, request, key)


@router.get(
    "/{provider}",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The challenge, echoed"},
        **error_responses(Forbidden, ProviderNotFound),
    },
    summary="A provider's subscription handshake (Meta: hub.mode, hub.verify_token, hub.challenge)",
)
async def verify_webhook(provider: ProviderPath, request: Request, ctx: Ctx) -> PlainTextResponse:
    answer = await service.verify_subscription(ctx, provider, request.query_params)
    return PlainTextResponse(answer)
