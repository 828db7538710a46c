"""Baileys through our own gateway (``gateway/``): a business links its number by QR code.

WhatsApp Web, not an official API: numbers that send fast, or to people who
never wrote first, get restricted or banned, so the default pace is cautious.
"""

from __future__ import annotations

from wabroadcast.providers.baileys import webhook
from wabroadcast.providers.baileys.config import SECRET_FIELDS, BaileysConfig
from wabroadcast.providers.baileys.provider import KIND, BaileysProvider
from wabroadcast.providers.common import WHATSAPP_WEB_CAPS, WHATSAPP_WEB_PACE, keyed_by_session_id
from wabroadcast.providers.plugin import ProviderPlugin, WebhookSpec

PLUGIN = ProviderPlugin(
    kind=KIND,
    title="Baileys (QR link, our gateway)",
    build=lambda deps: BaileysProvider(),
    config_model=BaileysConfig,
    secret_fields=SECRET_FIELDS,
    default_pace=WHATSAPP_WEB_PACE,
    daily_cap_preset=lambda config: WHATSAPP_WEB_CAPS,
    default_max_concurrency=1,
    webhook_key=keyed_by_session_id,
    webhook=WebhookSpec(
        routing_keys=webhook.routing_keys,
        parse=webhook.parse,
        inbound=webhook.inbound,
        headers={
            webhook.SESSION_HEADER: "The session the gateway reports for.",
            webhook.SIGNATURE_HEADER: "`sha256=<hex HMAC-SHA256 of the raw body, keyed with "
            "the session's webhook secret>`.",
        },
    ),
    summary="Your own number, linked by scanning a QR code, through the wabroadcast gateway.",
    form_fields=("base_url", "token"),
)

__all__ = ["PLUGIN", "BaileysConfig", "BaileysProvider"]
