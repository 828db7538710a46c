"""The FastAPI application factory; everything it needs is passed in or built from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from wabroadcast import __version__
from wabroadcast.api.body_limit import BodyLimitMiddleware
from wabroadcast.api.errors import install_error_handlers
from wabroadcast.api.routes import (
    broadcast_uploads,
    broadcasts,
    docs,
    health,
    metrics,
    opt_outs,
    sessions,
    tenant_settings,
    webhook_subscriptions,
    webhooks,
)
from wabroadcast.clock import Clock, SystemClock
from wabroadcast.config import Settings, get_settings
from wabroadcast.context import AppContext
from wabroadcast.crypto import LazySecretBox
from wabroadcast.db.engine import Database
from wabroadcast.dispatch.dispatcher import Dispatcher
from wabroadcast.providers.plugin import ProviderDeps
from wabroadcast.providers.registry import PLUGINS, Providers
from wabroadcast.ratelimit.service import RateLimits
from wabroadcast.sessions.config import SessionRefs
from wabroadcast.web.routes import router as dashboard_router


def build_context(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
) -> AppContext:
    settings = settings or get_settings()
    database = database or Database(settings.database_url)
    clock = clock or SystemClock()
    box = LazySecretBox(settings)
    return AppContext(
        settings,
        database,
        clock,
        Providers(ProviderDeps(database, clock, settings)),
        box,
        SessionRefs(box),
        RateLimits.for_database(database, settings),
    )


def create_app(context: AppContext | None = None, *, run_worker: bool = False) -> FastAPI:
    """An app bound to ``context`` (or one built from the environment).

    With ``run_worker`` the app also runs a dispatcher in its own event loop,
    which is how ``wabroadcast serve`` gives one command a working product.
    """
    ctx = context or build_context()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker = asyncio.create_task(Dispatcher(ctx).run(stop)) if run_worker else None
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await ctx.providers.aclose()
            await ctx.database.dispose()

    app = FastAPI(
        title="wabroadcast",
        version=__version__,
        description=(
            "Send one WhatsApp message to many recipients and see what happened to each. "
            "Authenticate with `Authorization: Bearer <API key>`. Every error is "
            '`{"success": false, "error_code", "message", "details"}`.'
        ),
        lifespan=lifespan,
        # FastAPI's docs pages load their scripts from a CDN; ``docs.router`` serves
        # Swagger UI at /docs from the server itself instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = ctx
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_body_bytes)
    routers = [
        # Before broadcasts.router: it takes the multipart requests of the same route.
        broadcast_uploads.router,
        broadcasts.router,
        # Before opt_outs.router, for the same reason.
        opt_outs.upload_router,
        opt_outs.router,
        opt_outs.stop_words_router,
        sessions.router,
        tenant_settings.router,
        webhooks.router,
        webhook_subscriptions.router,
        metrics.router,
        health.router,
        docs.router,
        dashboard_router,
        *(plugin.router() for plugin in PLUGINS.values() if plugin.router is not None),
    ]
    for router in routers:
        app.include_router(router)
    # The flat list of routes, for the Allow header of 405 answers.
    app.state.routes = [route for router in routers for route in router.routes]
    return app
