"""A tenant with its API key and default simulator session, for tests that call the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from wabroadcast.context import AppContext
from wabroadcast.tenants.service import create_tenant

# The frozen clock's start in every test.
START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
# Encrypts provider secrets in tests (a deployment makes its own: `wabroadcast secret-key`).
TEST_SECRET_KEY = "Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1rZXktLS0="


@dataclass(frozen=True)
class TenantFixture:
    tenant_id: int
    api_key: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(ctx: AppContext, name: str = "Acme", region: str = "IL") -> TenantFixture:
    async with ctx.database.transaction() as session:
        created = await create_tenant(
            session, ctx.clock, name=name, region=region, provider="simulator"
        )
    return TenantFixture(created.tenant_id, created.api_key, created.session_id)
