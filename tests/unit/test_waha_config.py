"""A WAHA session's config: what is accepted, what is refused, and that refusals never echo."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.providers.base import Pace
from wabroadcast.providers.waha import PLUGIN
from wabroadcast.providers.waha.config import WahaConfig
from wabroadcast.sessions.config import split_secrets, validate_config

VALID: dict[str, object] = {
    "base_url": "https://waha.example.com:3000/",
    "api_key": "a-real-looking-api-key-123",
    "hmac_key": "hmac-key-0123456789abcdef",
}


def config(**changes: object) -> WahaConfig:
    return WahaConfig.model_validate({**VALID, **changes})


def test_a_valid_config_gets_defaults_and_loses_the_trailing_slash() -> None:
    parsed = config()
    assert parsed.base_url == "https://waha.example.com:3000"
    assert parsed.session == "default"
    assert config(base_url="http://10.0.0.5:3000/waha//").base_url == "http://10.0.0.5:3000/waha"
    assert config(session="Shop_2-b").session == "Shop_2-b"
    assert config(session="s" * 64).session == "s" * 64


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "ftp://waha.example.com"),
        ("base_url", "waha.example.com:3000"),
        ("base_url", "http://"),
        ("base_url", "http://waha.example.com/?x=1"),
        ("base_url", "http://waha.example.com/#top"),
        ("base_url", "http://waha example.com"),
        ("base_url", "http://waha.example.com:99999"),
        ("base_url", "http://user:pw@waha.example.com"),
        ("base_url", ""),
        ("api_key", ""),
        ("api_key", "has a space"),
        ("api_key", "newline\nkey"),
        ("api_key", "ключ"),
        ("session", ""),
        ("session", "has space"),
        ("session", "dot.name"),
        ("session", "s" * 65),
        ("session", "../admin"),
        ("hmac_key", "short"),
        ("hmac_key", "sixteen chars ok?"),
        ("hmac_key", "x" * 257),
    ],
)
def test_bad_values_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(**{field: value})
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


@pytest.mark.parametrize("missing", ["base_url", "api_key", "hmac_key"])
def test_required_fields(missing: str) -> None:
    raw = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(ValidationError):
        WahaConfig.model_validate(raw)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        config(webhook_url="http://x")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_key", "secret value with spaces SENTINEL-1"),
        ("hmac_key", "SENTINEL-2"),
        ("base_url", "ftp://SENTINEL-3.example.com"),
        ("session", "SENTINEL 4"),
    ],
)
def test_refusals_never_echo_the_value(field: str, value: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_config(PLUGIN, {**VALID, field: value})
    error = caught.value
    shown = json.dumps({"message": str(error), "details": error.details}, default=str)
    assert "SENTINEL" not in shown
    assert f"config.{field}" in shown
    with pytest.raises(ValidationError) as raw:
        config(**{field: value})
    assert "SENTINEL" not in str(raw.value.errors(include_input=False))
    assert all("SENTINEL" not in str(e["msg"]) for e in raw.value.errors())


def test_the_secrets_are_the_api_key_and_the_hmac_key() -> None:
    validated = validate_config(PLUGIN, VALID)
    plain, hidden = split_secrets(PLUGIN, validated)
    assert plain == {"base_url": "https://waha.example.com:3000", "session": "default"}
    assert hidden == {"api_key": VALID["api_key"], "hmac_key": VALID["hmac_key"]}


def test_the_plugin_record() -> None:
    assert (PLUGIN.kind, PLUGIN.title) == ("waha", "WAHA (WhatsApp HTTP API)")
    assert PLUGIN.default_pace == Pace(rate_per_minute=8, jitter_ms=3000)
    assert PLUGIN.default_max_concurrency == 1
    assert PLUGIN.secret_fields == {"api_key", "hmac_key"}
    assert set(PLUGIN.form_fields) == set(WahaConfig.model_fields)
    assert PLUGIN.summary
    assert "\n" not in PLUGIN.summary
    assert PLUGIN.templates is False
