"""The ingest fast path: `POST /v1/events/ingest` served ahead of FastAPI's whole stack.

At one event per request the framework's own layers cost about as much CPU as the ingest
itself: FastAPI's entry (with its telemetry check), Starlette's error and body-limit
middleware, the router matching every route, FastAPI's per-request exit stack and
dependency solver. `ServiceApp` (the app `api.app.create_app` builds) takes exactly one
kind of request before any of them: `POST` to `INGEST_PATH` with no query string. It hands
it to its `ingest_front`, the project's own `MetricsMiddleware` and `BodyLimitMiddleware`
(so requests are counted and body limits hold exactly as for every route) around
`IngestEndpoint`. That calls the route function itself (`events.ingest_events`: the same
auth, content-type, Idempotency-Key and validation code) and answers an exception with the
app's own registered handler for it (`api.errors`), so every status and error body is the
one the FastAPI route gives. Everything else, a query string included (the query guard
refuses it), goes through FastAPI unchanged.

What the fast path leaves out for ingest: FastAPI's native OpenTelemetry hooks (the
service configures none) and middleware added to the app later with `add_middleware`.
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


def is_fast_ingest(scope: Scope) -> bool:
    """Whether `scope` is a request the fast path serves: `POST INGEST_PATH`, no query."""
    return (
        scope["type"] == "http"
        and scope["path"] == INGEST_PATH
        and scope["method"] == "POST"
        and not scope.get("query_string")
    )


class IngestEndpoint:
    """ASGI app serving the ingest route, and nothing else, with the app's error handlers."""

    def __init__(self, fastapi_app: FastAPI) -> None:
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
        scope["app"] = self.fastapi_app
        scope["route"] = self._ingest_route()
        request = Request(scope, receive, send)
        try:
            response: Response = await events.ingest_events(request)
        except Exception as exc:
            answer = self._handler_for(exc)(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


class ServiceApp(FastAPI):
    """The FastAPI app, with ingest requests taken by `ingest_front` before FastAPI's stack.

    `ingest_front` is None when the fast path is off (`create_app(fast_ingest=False)`):
    ingest then goes through FastAPI's routing like every other route.
    """

    ingest_front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.ingest_front
        if front is not None and is_fast_ingest(scope):
            if self.root_path:  # as FastAPI's own entry does
                scope["root_path"] = self.root_path
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
