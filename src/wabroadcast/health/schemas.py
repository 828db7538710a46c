"""What the health probes answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LiveOut(BaseModel):
    status: Literal["ok"] = "ok"
    version: str = Field(description="The running wabroadcast version.")


class ReadyOut(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    revision: str = Field(description="The schema's migration revision, which is the head.")
