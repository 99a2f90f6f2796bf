"""The FastAPI application: routers, error handlers, metrics, pool lifecycle.

`create_app(settings, db_url=...)` builds the app; the pools and the ingest group
committer start when the app starts (lifespan) and stop when it stops, the committer
first so that queued requests are stored. `app.state` carries `settings`, `pool`,
`ingest` (the `GroupCommitter`), `stripe_mode` (see `api.health`), `key_cache` and
`extra_health_checks` (callables other components append to before start-up to take
part in `/health/ready`).

`POST /v1/events/ingest` is served by `api.fast_ingest` ahead of FastAPI's own stack,
inside the same metrics and body-limit middleware (the same route function and error
handlers).

Adding a component's routes: append its `router` to `ROUTERS` below. Every API route
refuses query parameters it does not declare (`api.query_guard`), routes added later
included.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripemeter import package_version
from stripemeter.api import (
    bindings,
    corrections,
    events,
    health,
    mappings,
    metrics,
    query_guard,
    reconciliation,
    stripe_webhooks,
    usage,
    writer_status,
)
from stripemeter.api.errors import ApiError, error_response, install_error_handlers
from stripemeter.api.fast_ingest import IngestEndpoint, ServiceApp
from stripemeter.api.health import HealthCheck
from stripemeter.auth import KeyCache, RevocationListener
from stripemeter.config import Settings, load_settings
from stripemeter.db import database_url
from stripemeter.db.pool import open_pool
from stripemeter.ingest.group import GroupCommitter
from stripemeter.ops.metrics import record_stripe_mode
from stripemeter.stripe.client import service_mode

log = logging.getLogger("stripemeter.api")

MAX_BODY_BYTES = 1024 * 1024

# Every router the API serves.
ROUTERS: list[APIRouter] = [
    events.router,
    usage.router,
    mappings.router,
    bindings.router,
    writer_status.router,
    reconciliation.router,
    corrections.router,
    stripe_webhooks.router,
    health.router,
    metrics.router,
]


class BodyLimitMiddleware:
    """Answer 413 for bodies over `limit` bytes, declared or streamed (chunked)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    response = error_response(
                        413,
                        "payload_too_large",
                        f"request body is {declared} bytes; the limit is {self.limit}",
                    )
                    await response(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(
                        413,
                        "payload_too_large",
                        f"request body exceeds the limit of {self.limit} bytes",
                    )
            return message

        await self.app(scope, counting_receive, send)


def create_app(
    settings: Settings,
    *,
    db_url: str | None = None,
    fast_ingest: bool = True,
    freeze_startup_heap: bool = False,
) -> FastAPI:
    """Build the API for `settings`, talking to `db_url` (default: `database_url(settings)`).

    `fast_ingest=False` leaves out `api.fast_ingest`, so ingest goes through FastAPI's
    stack and routing like every other route (the tests compare the two).

    `freeze_startup_heap` (the served processes of `stripemeter api`): once started, the
    process's heap (modules, the app, the pools) is moved out of the garbage collector's
    reach (`gc.freeze`). Under 100-event batches a loaded process otherwise paused for
    full collections of that heap, 60 to 93 ms each, several times in 10 s.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = db_url or database_url(settings)
        app.state.pool = open_pool(url, max_size=settings.DB_POOL_MAX_SIZE)
        # Reconciliation runs borrow from their own pool, never the request pool.
        app.state.background_pool = open_pool(
            url, max_size=settings.BACKGROUND_POOL_MAX_SIZE, name="background", min_size=0
        )
        app.state.ingest = GroupCommitter(
            app.state.pool,
            max_events=settings.INGEST_GROUP_MAX_EVENTS,
            max_wait_s=settings.INGEST_GROUP_MAX_WAIT_MS / 1000,
            writers=settings.INGEST_WRITER_THREADS,
        )
        app.state.ingest.start()
        revocations = RevocationListener(url, app.state.key_cache)
        revocations.start()
        if freeze_startup_heap:
            gc.collect()  # start-up's own garbage first: frozen objects are never freed
            gc.freeze()
        try:
            yield
        finally:
            revocations.stop()
            app.state.ingest.close()
            reconciliation.shutdown(app)
            app.state.background_pool.close()
            app.state.pool.close()

    app = ServiceApp(
        title="stripemeter",
        version=package_version(),
        summary="Exactly-once usage metering for Stripe Billing Meters",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stripe_mode = service_mode(settings)
    record_stripe_mode(app.state.stripe_mode)
    app.state.key_cache = KeyCache()
    extra_checks: list[HealthCheck] = []
    app.state.extra_health_checks = extra_checks
    writer_status.install(app)
    health.install_stripe_probe(app, settings)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    query_guard.document(app)
    app.add_middleware(query_guard.QueryGuardMiddleware, fastapi_app=app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(metrics.MetricsMiddleware)
    if fast_ingest:
        app.ingest_front = metrics.MetricsMiddleware(BodyLimitMiddleware(IngestEndpoint(app)))
    return app


def create_app_from_env(*, freeze_startup_heap: bool = False) -> FastAPI:
    """App factory for `uvicorn --factory` (several worker processes): settings from env."""
    return create_app(load_settings(), freeze_startup_heap=freeze_startup_heap)
