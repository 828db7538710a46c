"""The one list of provider kinds, and the provider instances of one process.

Adding a provider is one package under ``providers/`` and one line in ``PLUGINS``;
everything else (config validation, pacing defaults, webhooks, metrics labels,
the Sessions page) asks here.
"""

from __future__ import annotations

from collections.abc import Mapping

from wabroadcast.domain.daily_caps import Preset
from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.providers import baileys, cloud_api, evolution, simulator, waha
from wabroadcast.providers.base import Pace, Provider
from wabroadcast.providers.common import WHATSAPP_WEB_CAPS, WHATSAPP_WEB_PACE
from wabroadcast.providers.plugin import ProviderDeps, ProviderPlugin

PLUGINS: dict[str, ProviderPlugin] = {
    plugin.kind: plugin
    for plugin in (
        simulator.PLUGIN,
        cloud_api.PLUGIN,
        baileys.PLUGIN,
        evolution.PLUGIN,
        waha.PLUGIN,
    )
}
# The pace of a session whose kind is not installed here (a database shared with a
# newer version): cautious, like the WhatsApp Web gateways'.
FALLBACK_PACE = WHATSAPP_WEB_PACE


class UnknownProvider(ValidationFailed):
    """A provider kind this installation does not have."""


def kinds() -> list[str]:
    """Every provider kind, in registry order."""
    return list(PLUGINS)


def known_provider(kind: str) -> bool:
    return kind in PLUGINS


def plugin_for(kind: str) -> ProviderPlugin:
    """The plug-in of ``kind``; ``UnknownProvider`` (422) naming the valid ones otherwise."""
    plugin = PLUGINS.get(kind)
    if plugin is None:
        raise UnknownProvider(
            f"provider: {kind[:64]!r} is not a known provider; valid: {', '.join(PLUGINS)}",
            details={"field": "provider", "valid": kinds()},
        )
    return plugin


def default_pace(kind: str) -> Pace:
    plugin = PLUGINS.get(kind)
    return FALLBACK_PACE if plugin is None else plugin.default_pace


def daily_cap_preset(kind: str, config: Mapping[str, object]) -> Preset:
    """The daily cap and warm-up a session of ``kind`` has where its own are unset; a
    kind not installed here gets the WhatsApp Web gateways' cautious one, like its pace."""
    plugin = PLUGINS.get(kind)
    return WHATSAPP_WEB_CAPS if plugin is None else plugin.daily_cap_preset(config)


class Providers:
    """One provider instance per kind for this process, built when first asked for."""

    def __init__(self, deps: ProviderDeps) -> None:
        self._deps = deps
        self._built: dict[str, Provider] = {}

    def for_kind(self, kind: str) -> Provider:
        provider = self._built.get(kind)
        if provider is None:
            provider = self._built[kind] = plugin_for(kind).build(self._deps)
        return provider

    async def aclose(self) -> None:
        """Release what the providers hold (connection pools)."""
        built, self._built = self._built, {}
        for provider in built.values():
            await provider.aclose()
