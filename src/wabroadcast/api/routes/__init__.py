"""HTTP routes; each handler parses, calls one service function and returns a schema."""

from __future__ import annotations

from typing import Any

from wabroadcast.api.schemas import ErrorEnvelope


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error envelopes a route can return."""
    descriptions = {
        400: "Bad request (NO_RECIPIENTS, NO_VALID_RECIPIENTS)",
        401: "Missing or invalid API key (UNAUTHORIZED)",
        404: "Not found, or not this tenant's",
        409: "Conflict (IDEMPOTENCY_KEY_IN_USE, SESSION_EXISTS, SESSION_IN_USE, NOT_LINKABLE)",
        413: "Too many recipients (TOO_MANY_RECIPIENTS)",
        422: "Invalid input (VALIDATION_ERROR, IDEMPOTENCY_KEY_MISMATCH)",
        502: "The provider refused or did not answer (PROVIDER_SETUP_FAILED)",
        503: "WhatsApp not connected (WHATSAPP_NOT_CONNECTED)",
    }
    return {c: {"model": ErrorEnvelope, "description": descriptions[c]} for c in codes}
