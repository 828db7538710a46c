"""Telling Evolution where to post a session's webhooks, when the session is saved.

Evolution signs nothing, so wabroadcast registers the webhook itself (the
plug-in's ``prepare_session``): the session's own URL, and a header carrying
the random secret wabroadcast generated for the session, which Evolution then
sends on every call. The Evolution API key is never that secret. A refusal or
no answer raises ``ProviderSetupFailed`` (502), and the session is not stored.
"""

from __future__ import annotations

import json

import httpx

from wabroadcast.domain.errors import ProviderSetupFailed
from wabroadcast.providers.base import SessionRef
from wabroadcast.providers.common import compose, json_or_none
from wabroadcast.providers.evolution.errors import evolution_text
from wabroadcast.providers.evolution.provider import (
    KIND,
    api_headers,
    instance_url,
    secret_values,
)
from wabroadcast.providers.evolution.webhook import SECRET_HEADER

SETUP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Evolution's names (UPPER_SNAKE here; its webhooks name them lower.dot): receipts,
# the instance's connection, and incoming messages (accepted, not used yet).
WEBHOOK_EVENTS = ("MESSAGES_UPDATE", "CONNECTION_UPDATE", "MESSAGES_UPSERT")
NOTHING_SAVED = "Nothing was saved."


def webhook_settings(webhook_url: str, secret: str) -> dict[str, object]:
    """The body of ``POST /webhook/set/{instance}``, in Evolution v2's nested shape."""
    return {
        "webhook": {
            "enabled": True,
            "url": webhook_url,
            # Sent by Evolution on every call. Not ``jwt_key``: Evolution turns that
            # header into an ``Authorization: Bearer <JWT>``.
            "headers": {SECRET_HEADER: secret},
            "byEvents": False,
            "base64": False,
            "events": list(WEBHOOK_EVENTS),
        }
    }


async def register_webhook(
    session: SessionRef,
    webhook_url: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Set the instance's webhook to ``webhook_url`` with the session's secret header.

    Raises ``ProviderSetupFailed`` with a sentence a person can act on when
    Evolution cannot be reached or does not answer 2xx.
    """
    config = session.config
    instance = str(config.get("instance", ""))
    if not webhook_url or not session.webhook_secret:
        raise _failed("wabroadcast has no webhook URL or secret for this session.", None)
    body = json.dumps(webhook_settings(webhook_url, session.webhook_secret)).encode()
    headers = {**api_headers(config), "content-type": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=SETUP_TIMEOUT, transport=transport) as client:
            response = await client.post(
                instance_url(config, "webhook/set"), content=body, headers=headers
            )
    except httpx.TimeoutException:
        raise _failed(
            "Evolution API did not answer in time when wabroadcast registered the webhook; "
            "check base_url and that Evolution is running.",
            None,
        ) from None
    except httpx.HTTPError as exc:
        raise _failed(
            f"Evolution API could not be reached at base_url ({type(exc).__name__}); "
            "check the URL and that Evolution is running and reachable from wabroadcast.",
            None,
        ) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    text = evolution_text(json_or_none(response.content), secret_values(session))
    if status in (401, 403):
        guidance = (
            "Evolution refused the API key when wabroadcast registered the webhook; "
            "check api_key (the global AUTHENTICATION_API_KEY or the instance's token)."
        )
    elif status == 404:
        guidance = (
            f"Evolution has no instance named {instance!r}; create it and pair the phone "
            "in Evolution's manager first, or fix the instance name."
        )
    else:
        guidance = (
            f"Evolution refused to register the webhook (HTTP {status}); "
            "check the Evolution server's logs."
        )
    raise _failed(compose(text, guidance), status)


def _failed(sentence: str, http_status: int | None) -> ProviderSetupFailed:
    details: dict[str, object] = {"provider": KIND}
    if http_status is not None:
        details["http_status"] = http_status
    return ProviderSetupFailed(f"{sentence} {NOTHING_SAVED}", details=details)
