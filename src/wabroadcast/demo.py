"""``make demo``: the product running on its embedded default, used as a client would."""

from __future__ import annotations

import asyncio
import json

import httpx
import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from wabroadcast import client as api
from wabroadcast.api.app import build_context, create_app
from wabroadcast.config import get_settings
from wabroadcast.db import migrate
from wabroadcast.observability.logging import configure_logging
from wabroadcast.tenants.service import create_tenant

DEMO_RECIPIENTS: list[object] = [
    {"phone": "050-234-5678", "lead_id": 1, "name": "Dana"},
    {"phone": "+972 52 345 6789", "lead_id": 2, "name": "Yossi"},
    {"phone": "00972533456789", "lead_id": 3, "name": "Noa"},
    "972544567890",
    "0555678901",
    "+1 (650) 253-0000",
    "+972502345678",
    "0502345678",
    "123",
    "call me maybe",
    "+97250123456789012",
]


async def run_demo(port: int | None = None) -> None:
    console = Console()
    settings = get_settings()
    # Only problems are logged, so the progress bar stays readable; `make run`
    # shows the full [WA_BROADCAST]/[WA_SEND] log.
    configure_logging(settings.log_format, "warning")
    migrate.upgrade(settings.database_url)
    port = port or settings.port
    ctx = build_context(settings)
    async with ctx.database.transaction() as session:
        tenant = await create_tenant(
            session,
            ctx.clock,
            name="Demo business",
            region=settings.default_region,
            provider=settings.default_provider,
        )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx, run_worker=True), host=settings.host, port=port, log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.05)
    base_url = f"http://{settings.host}:{port}"
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    body = {
        "message": "Hello from wabroadcast! Our store opens at 9 tomorrow.",
        "recipients": DEMO_RECIPIENTS,
    }
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        # One number the simulated WhatsApp does not know, to show a failure and its reason.
        await client.put(
            "/api/whatsapp/simulator", json={"fail_numbers": {"+16502530000": "NOT_ON_WHATSAPP"}}
        )
        response = await client.post("/api/whatsapp/broadcasts", json=body)
        proof = response.json()
        console.print(
            Panel.fit(
                Syntax(json.dumps(proof, indent=2, ensure_ascii=False), "json"),
                title=f"POST /api/whatsapp/broadcasts -> {response.status_code}",
            )
        )
        if response.status_code in (200, 202):
            console.print("Sending at the simulator's default pace (2 messages a second):")
            state = await api.follow(client, console, proof["broadcast_id"])
            await api.print_summary(client, console, state)
    console.print(f"Dashboard: [bold]{base_url}/[/]  (sign in with the API key below)")
    console.print(f"API docs: {base_url}/docs  (OpenAPI: {base_url}/openapi.json)")
    console.print(f"Tenant {tenant.tenant_id}, session {tenant.session_id}")
    console.print(f"API key: [bold]{tenant.api_key}[/]")
    console.print("Try:")
    print(f'  curl -H "Authorization: Bearer {tenant.api_key}" {base_url}/api/whatsapp/broadcasts')
    print(
        f"  .venv/bin/wabroadcast send --url {base_url} --api-key {tenant.api_key} "
        "--message 'Hello again' --to 0502345678 --wait"
    )
    console.print("Press Ctrl+C to stop.")
    await serving
