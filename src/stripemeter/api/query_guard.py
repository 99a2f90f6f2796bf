"""Unknown query parameters are refused, on every route: 400 `unknown_query_parameter`.

FastAPI ignores a query parameter a route does not declare, so a misspelt filter
(`?startDate=` for `?from=`) would silently widen a read. `QueryGuardMiddleware` runs
for every request, so every route is covered, those added later included: it finds the
route a request is for, compares the request's query keys with that route's declared
query parameters (its own and its dependencies', by alias; computed once per route) and
answers 400 naming the first unknown one and listing the known ones. It runs before
authentication and validation (the names are public in /openapi.json anyway) and
passes a request without a query string straight through, so the ingest hot path
(no query) pays one function call, not a dependency.

Routes are matched by their own path: a router included with a `prefix` would not be
found (the test walking every route would catch it); this app includes none.

`document(app)` adds the refusal to every operation's documented 400 answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from stripemeter.api.errors import error_response
from stripemeter.api.schemas import ErrorBody

CODE = "unknown_query_parameter"


def declared_query_names(route: APIRoute) -> frozenset[str]:
    """The query parameter names `route` takes (aliases, as callers spell them)."""
    names: set[str] = set()

    def walk(dependant: Dependant) -> None:
        names.update(param.alias for param in dependant.query_params)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return frozenset(names)


def unknown_parameter_message(name: str, method: str, path: str, known: frozenset[str]) -> str:
    """The one-line refusal: what is unknown, and what the route does take."""
    takes = f"it takes {', '.join(sorted(known))}" if known else "it takes no query parameters"
    return f"unknown query parameter {name!r} for {method} {path}; {takes}"


class QueryGuardMiddleware:
    """ASGI middleware: 400 for a query key the route the request is for does not declare.

    A request without a query string passes straight through. Otherwise the route is
    found the way the router finds it (path and method match of each `APIRoute`); the
    list of routes and their names is built on first use and rebuilt when nothing
    matches (a route added since). No matching route: the router answers (404/405).
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._routes: list[tuple[APIRoute, frozenset[str]]] | None = None

    def _table(self, refresh: bool) -> list[tuple[APIRoute, frozenset[str]]]:
        if self._routes is None or refresh:
            self._routes = [(r, declared_query_names(r)) for r in api_routes(self.fastapi_app)]
        return self._routes

    def _route_for(self, scope: Scope) -> tuple[APIRoute, frozenset[str]] | None:
        for refresh in (False, True):
            for route, allowed in self._table(refresh):
                if route.matches(scope)[0] is Match.FULL:
                    return route, allowed
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query:
            found = self._route_for(scope)
            if found is not None:
                route, allowed = found
                for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                    if name not in allowed:
                        message = unknown_parameter_message(
                            name, scope["method"], route.path, allowed
                        )
                        await error_response(400, CODE, message, name)(scope, receive, send)
                        return
        await self.app(scope, receive, send)


_DOC = "unknown_query_parameter: the query names a parameter this route does not take"


def _document(route: APIRoute) -> None:
    responses: dict[int | str, dict[str, Any]] = route.responses
    entry = responses.get(400) or responses.get("400")
    if entry is None:
        responses[400] = {"model": ErrorBody, "description": _DOC}
        route.response_fields[400] = create_model_field(
            name=f"Response_400_{route.unique_id}", type_=ErrorBody, mode="serialization"
        )
    elif CODE not in entry.get("description", ""):
        entry["description"] = f"{entry.get('description', '')}; {_DOC}".lstrip("; ")


def document(app: FastAPI) -> None:
    """Add the refusal to the 400 answers /openapi.json documents for every operation."""
    for route in _api_routes(app.router.routes):
        _document(route)


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI's included router
            found.extend(_api_routes(route.original_router.routes))
    return found


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every `APIRoute` the app serves, those of included routers too."""
    return _api_routes(app.router.routes)
