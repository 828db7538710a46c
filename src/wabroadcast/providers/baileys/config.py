"""A Baileys session's config: where our gateway (``gateway/``) listens, and its token."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

SECRET_FIELDS = frozenset({"token"})
DEFAULT_BASE_URL = "http://127.0.0.1:8790"


class BaileysConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        max_length=500,
        description="Where the wabroadcast gateway listens (WABROADCAST_GATEWAY_PORT, default "
        "8790 on this machine).",
    )
    token: Annotated[str, StringConstraints(min_length=8, max_length=500)] = Field(
        description="The gateway's shared secret (WABROADCAST_GATEWAY_TOKEN), sent as "
        "X-Gateway-Token."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest or " " in rest:
            raise ValueError("must be an http:// or https:// address")
        return value
