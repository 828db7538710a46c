"""An Evolution session's config: what is accepted, what is refused, and that refusals
never repeat what was given (the API key is a secret)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from wabroadcast.domain.errors import ValidationFailed
from wabroadcast.providers.evolution import PLUGIN
from wabroadcast.providers.evolution.config import EvolutionConfig
from wabroadcast.sessions.config import split_secrets, validate_config

VALID: dict[str, Any] = {
    "base_url": "https://evo.example.com",
    "api_key": "B6D711FCDE4D4FD5936544120E713976",
    "instance": "shop1",
}


def config(**changes: object) -> EvolutionConfig:
    return EvolutionConfig.model_validate({**VALID, **changes})


def test_a_valid_config_is_kept_as_given() -> None:
    assert config().model_dump() == VALID


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://evo.example.com/", "https://evo.example.com"),
        ("http://127.0.0.1:8080//", "http://127.0.0.1:8080"),
        ("https://proxy.example.com/evolution/", "https://proxy.example.com/evolution"),
    ],
)
def test_the_base_url_loses_its_trailing_slashes(given: str, stored: str) -> None:
    assert config(base_url=given).base_url == stored


@pytest.mark.parametrize(
    "base_url",
    [
        "evo.example.com",
        "ftp://evo.example.com",
        "https://",
        "https://evo.example.com/?x=1",
        "https://evo.example.com/#top",
        "https://evo example.com",
        "https://evo.example.com\n",
        "https://user:pass@evo.example.com",
        "http://evo.example.com:notaport",
        "",
    ],
)
def test_a_base_url_that_is_not_a_plain_http_url_is_refused(base_url: str) -> None:
    with pytest.raises(ValidationError):
        config(base_url=base_url)


@pytest.mark.parametrize("instance", ["shop1", "Shop_1", "my.shop-2", "a" * 64, "..a", "_"])
def test_instance_names_evolution_allows_are_accepted(instance: str) -> None:
    assert config(instance=instance).instance == instance


@pytest.mark.parametrize(
    "instance", ["", "a" * 65, "shop 1", "shop/1", "shop?", "שלום", "shop١", ".", "..", "%2e"]
)
def test_other_instance_names_are_refused(instance: str) -> None:
    with pytest.raises(ValidationError):
        config(instance=instance)


@pytest.mark.parametrize("api_key", ["", "has space", "tab\tkey", "ключ", "x" * 513])
def test_an_api_key_that_cannot_go_in_a_header_is_refused(api_key: str) -> None:
    with pytest.raises(ValidationError):
        config(api_key=api_key)


@pytest.mark.parametrize("missing", ["base_url", "api_key", "instance"])
def test_every_field_is_required(missing: str) -> None:
    given = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(ValidationError):
        EvolutionConfig.model_validate(given)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        config(token="x")


@pytest.mark.parametrize(
    "changes",
    [
        {"api_key": "SECRET-KEY with-space-0123456789"},
        {"base_url": "https://user:SECRET-KEY-0123456789@evo.example.com"},
        {"instance": "SECRET-KEY/0123456789"},
    ],
)
def test_refusals_never_repeat_what_was_given(changes: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_config(PLUGIN, {**VALID, **changes})
    shown = f"{refused.value.message} {refused.value.details}"
    assert "SECRET-KEY" not in shown
    assert "0123456789" not in shown


def test_only_the_api_key_is_secret() -> None:
    plain, hidden = split_secrets(PLUGIN, validate_config(PLUGIN, VALID))
    assert hidden == {"api_key": VALID["api_key"]}
    assert plain == {"base_url": VALID["base_url"], "instance": "shop1"}
