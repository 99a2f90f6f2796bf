"""The ingest fast path: `POST /v1/events/ingest` served without FastAPI's routing stack.

At one event per request the framework's own layers (exception middleware, the router
matching every route, FastAPI's per-request exit stack and dependency solver) cost
about as much CPU as the ingest itself. `IngestFastPath` is ASGI middleware that sits
just inside `MetricsMiddleware` and `BodyLimitMiddleware` (so requests are counted and
body limits hold exactly as before) and takes exactly one kind of request: `POST` to
`INGEST_PATH` with no query string. It calls the route function itself
(`events.ingest_events`: the same auth, content-type, Idempotency-Key and validation
code) and answers an exception with the app's own registered handler for it
(`api.errors`), so every status and error body is the one the FastAPI route gives.
Everything else, a query string included (the query guard refuses it), goes on to
FastAPI unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stripemeter.api import events
from stripemeter.api.query_guard import api_routes

INGEST_PATH = "/v1/events/ingest"

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def check_served_alone(route: APIRoute) -> APIRoute:
    """`route`, if calling its function with the request is all FastAPI would do.

    A dependency or declared parameter added to the ingest route later would be skipped
    by the fast path; this refuses to serve it rather than skip it silently.
    """
    dependant = route.dependant
    declared = (
        dependant.dependencies
        or dependant.query_params
        or dependant.header_params
        or dependant.body_params
        or dependant.path_params
        or dependant.cookie_params
    )
    if declared or dependant.request_param_name != "request":
        raise RuntimeError(
            f"{route.path} declares dependencies or parameters; api.fast_ingest would skip "
            "them: resolve them in the route function (as auth is) or drop the fast path"
        )
    return route


class IngestFastPath:
    """ASGI middleware: serve the ingest route directly; pass everything else on."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._route: APIRoute | None = None
        self._handlers: dict[type[BaseException], Handler] = {}

    def _ingest_route(self) -> APIRoute:
        """The FastAPI route object (its path labels the request in the metrics)."""
        if self._route is None:
            for route in api_routes(self.fastapi_app):
                if route.endpoint is events.ingest_events:
                    self._route = check_served_alone(route)
                    break
            else:  # pragma: no cover - the events router is always included
                raise RuntimeError(f"no route serves {INGEST_PATH}")
        return self._route

    def _handler_for(self, exc: Exception) -> Handler:
        """The app's exception handler for `exc`: the nearest class in its MRO, as Starlette."""
        kind = type(exc)
        handler = self._handlers.get(kind)
        if handler is None:
            registered: dict[Any, Handler] = self.fastapi_app.exception_handlers
            for cls in kind.__mro__:
                if cls in registered:
                    handler = registered[cls]
                    break
            else:  # pragma: no cover - `Exception` is always registered (api.errors)
                raise exc
            self._handlers[kind] = handler
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != INGEST_PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        scope["app"] = self.fastapi_app
        scope["route"] = self._ingest_route()
        request = Request(scope, receive, send)
        try:
            response: Response = await events.ingest_events(request)
        except Exception as exc:
            answer = self._handler_for(exc)(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)
