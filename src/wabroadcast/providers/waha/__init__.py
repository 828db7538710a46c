"""WAHA (WhatsApp HTTP API): a self-hosted gateway that drives WhatsApp Web for a paired number.

Everything wabroadcast knows of this provider is the ``PLUGIN`` record below:
its config, its HTTP adapter and its webhooks (one URL per session, signed
with an HMAC-SHA512 key the operator enters both here and in WAHA). WhatsApp
Web gateways get numbers banned when they send like a bulk sender, hence the
slow default pace and one message in flight.
"""

from __future__ import annotations

from wabroadcast.providers.common import WHATSAPP_WEB_CAPS, WHATSAPP_WEB_PACE, keyed_by_session_id
from wabroadcast.providers.plugin import ProviderPlugin, WebhookSpec
from wabroadcast.providers.waha.config import SECRET_FIELDS, WahaConfig
from wabroadcast.providers.waha.inbound import inbound
from wabroadcast.providers.waha.provider import KIND, WahaProvider
from wabroadcast.providers.waha.webhook import parse, routing_keys

PLUGIN = ProviderPlugin(
    kind=KIND,
    title="WAHA (WhatsApp HTTP API)",
    build=lambda deps: WahaProvider(),
    config_model=WahaConfig,
    secret_fields=SECRET_FIELDS,
    default_pace=WHATSAPP_WEB_PACE,
    daily_cap_preset=lambda config: WHATSAPP_WEB_CAPS,
    default_max_concurrency=1,
    webhook_key=keyed_by_session_id,
    webhook=WebhookSpec(
        routing_keys=routing_keys,
        parse=parse,
        per_session_url=True,
        headers={
            "X-Webhook-Hmac": "`<hex HMAC-SHA512 of the raw body, keyed with the session's "
            "hmac_key>` (WAHA's webhook HMAC).",
        },
        inbound=inbound,
    ),
    summary=(
        "A self-hosted WhatsApp Web gateway for a number paired by QR code; "
        "slow-paced, as such numbers risk a ban."
    ),
    form_fields=("base_url", "session", "api_key", "hmac_key"),
)

__all__ = ["PLUGIN", "WahaConfig", "WahaProvider"]
