"""`GET /metrics`, who may see tenant detail, and the middleware that counts requests.

Without a key, `/metrics` (and `/health/ready`) show only totals: no tenant id, metric
name, price id, customer or Stripe error text. Tenant detail (`tenant_id` / `metric`
labels, which tenants fail and why) is shown:

- to an admin key (`Authorization: Bearer <secret>` or `x-api-key`), limited to that key's tenant;
- to everyone when `METRICS_TENANT_DETAIL=1` (a scraper on a private network);
- under `BYPASS_AUTH` (loopback only), which opens every route to every tenant anyway.

A request that sends a key which is unknown, revoked or not admin is refused (401 or
403) rather than silently shown less.

The middleware is plain ASGI (no per-request task or body buffering) and labels
requests with the route template (`/v1/mappings/{mapping_id}`), never the raw path,
and with a standard method or `other`, so the number of series stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripemeter.api.deps import get_principal, has_api_key
from stripemeter.api.schemas import AUTH_ERRORS, error_responses
from stripemeter.config import Settings
from stripemeter.ops.gauges import STATE_COLLECTOR
from stripemeter.ops.metrics import HTTP_LATENCY, HTTP_REQUESTS, REGISTRY, method_label

router = APIRouter(tags=["operations"])
# The media type of CONTENT_TYPE_LATEST, without its parameters (version, charset).
PROMETHEUS_MEDIA_TYPE = CONTENT_TYPE_LATEST.split(";", 1)[0]


@dataclass(frozen=True)
class Disclosure:
    """What a caller of `/metrics` or `/health/ready` may see about tenants."""

    tenant_detail: bool
    # With detail: only this tenant's series; None means every tenant.
    tenant_id: str | None = None


PUBLIC = Disclosure(tenant_detail=False)


async def disclosure_for(request: Request) -> Disclosure:
    """Decide from the key (if any) and the settings what the caller may see (module doc)."""
    settings: Settings = request.app.state.settings
    if settings.BYPASS_AUTH:
        return Disclosure(tenant_detail=True)
    if not has_api_key(request):
        return Disclosure(tenant_detail=True) if settings.METRICS_TENANT_DETAIL else PUBLIC
    principal = await get_principal(request)  # 401 for an unknown or revoked key
    principal.require_scope("admin")  # 403 naming the scope; totals need no key
    return Disclosure(tenant_detail=True, tenant_id=principal.tenant_id)


def exposition(disclosure: Disclosure) -> bytes:
    """The Prometheus text: this process's counters, then the scrape-time gauges."""
    gauges = STATE_COLLECTOR.collect(
        tenant_detail=disclosure.tenant_detail, tenant_id=disclosure.tenant_id
    )
    return generate_latest(REGISTRY) + generate_latest(_Families(gauges))


class _Families(Collector):
    """A ready list of metric families, in the shape `generate_latest` reads."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        """The families given at construction."""
        return self._families


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": f"Prometheus text exposition ({CONTENT_TYPE_LATEST})",
            "content": {PROMETHEUS_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(AUTH_ERRORS),
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition: totals for anyone, tenant detail for an admin key."""
    disclosure = await disclosure_for(request)
    body = await anyio.to_thread.run_sync(exposition, disclosure)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Count requests by (method, route, status) and observe their latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled series, looked up once each: `labels()` costs 3.5 µs a request.
        # As bounded as the labels themselves (method label x route template x status).
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _observe(self, method: str, template: str, status: int, seconds: float) -> None:
        series = self._series.get((method, template, status))
        if series is None:
            series = (
                HTTP_REQUESTS.labels(method=method, route=template, status=str(status)),
                HTTP_LATENCY.labels(method=method, route=template),
            )
            self._series[(method, template, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = method_label(scope.get("method", ""))
            self._observe(method, template, status, time.perf_counter() - started)
