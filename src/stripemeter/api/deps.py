"""Request dependencies as typed aliases: who is calling, the pool, the settings.

Route functions declare `principal: ReadPrincipal` (or `IngestPrincipal`,
`AdminPrincipal`; `CurrentPrincipal` for any valid key), `pool: Pool`,
`settings: AppSettings`; FastAPI fills them from `app.state`. A key without the
scope a route needs gets 403 `forbidden_scope` with `requiredScope` naming it.

The key comes as `Authorization: Bearer <secret>` or (StripeMeter's header) `x-api-key:
<secret>`; both headers with different keys are refused with 400.

FastAPI reads and parses a route's JSON body before it runs any dependency, so a
malformed body from a caller without a key would answer 400 and tell a stranger about
the route's schema. Routers with body routes use `route_class=AuthFirstRoute`: their
routes authenticate (401) and check their scopes (403) first; the principal is kept on
the request so the dependency does not look the key up twice.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import AfterValidator, Field
from starlette.responses import Response

from stripemeter import auth
from stripemeter.api.errors import ApiError
from stripemeter.auth import ALL_SCOPES
from stripemeter.auth import Scope as KeyScope
from stripemeter.config import Settings
from stripemeter.db.pool import Pool as ConnectionPoolType
from stripemeter.errors import StripeConfigError
from stripemeter.stripe.client import gateway_from_settings
from stripemeter.stripe.gateway import RetryPolicy, StripeGateway
from stripemeter.tenants import MAX_TENANT_CHARS, TENANT_PATTERN, check_tenant_id


@dataclass(frozen=True)
class Principal:
    """The caller: one tenant, or every tenant (`tenant_id=None`) under BYPASS_AUTH.

    `scopes` are the key's (module `stripemeter.auth`); BYPASS_AUTH has them all.
    """

    tenant_id: str | None
    scopes: frozenset[str] = ALL_SCOPES
    strict_uuid: bool = False  # STRICT_TENANT_ID_UUID: tenant ids it names must be UUIDs

    def require_scope(self, scope: KeyScope) -> None:
        """Refuse (403, naming the scope) a request this key's scopes do not cover."""
        if scope not in self.scopes:
            raise ApiError(
                403,
                "forbidden_scope",
                f"this API key lacks the {scope!r} scope this request needs (it has "
                f"{', '.join(sorted(self.scopes))}); use a key created with "
                f"`stripemeter api-keys create --scope {scope}`",
                "Authorization",
                extra={"requiredScope": scope},
            )

    @property
    def scope(self) -> str:
        """Namespace for request-level idempotency keys: the tenant, or `bypass`."""
        return "bypass" if self.tenant_id is None else str(self.tenant_id)

    def require_tenant(self, tenant_id: str) -> None:
        """Refuse (403, naming the tenant) access to a tenant this caller does not own.

        `tenant_id` is canonical (`stripemeter.tenants`); under STRICT_TENANT_ID_UUID a
        non-UUID is refused with 400 first.
        """
        if self.strict_uuid:
            check_tenant_id(tenant_id, strict_uuid=True)
        if self.tenant_id is not None and tenant_id != self.tenant_id:
            raise ApiError(
                403,
                "forbidden_tenant",
                f"this API key belongs to tenant {self.tenant_id} and may not access "
                f"tenant {tenant_id}",
                "tenantId",
            )

    def tenant_or(self, tenant_id: str | None) -> str:
        """The tenant a read is about: the given one (checked, canonical) or the caller's own."""
        if tenant_id is not None:
            tenant_id = check_tenant_id(tenant_id, strict_uuid=self.strict_uuid)
            self.require_tenant(tenant_id)
            return tenant_id
        if self.tenant_id is None:
            raise ApiError(400, "missing_field", "tenantId is required", "tenantId")
        return self.tenant_id


# Dependencies are `async def` even without awaiting: FastAPI runs plain `def`
# dependencies in a worker thread, a hop per request the hot path cannot afford.
async def get_pool(request: Request) -> ConnectionPoolType:
    """The app's connection pool."""
    pool: ConnectionPoolType = request.app.state.pool
    return pool


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def verification_gateway(request: Request) -> StripeGateway:
    """The app's gateway for ownership checks made while a caller waits (bindings, mappings).

    Built on first use, so routes that need no check work without Stripe configured;
    few retries, since a person or a script is waiting on the answer. 503
    `stripe_not_configured` when the settings name no usable Stripe.
    """
    gateway: StripeGateway | None = getattr(request.app.state, "verification_gateway", None)
    if gateway is None:
        settings: Settings = request.app.state.settings
        try:
            gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=2))
        except StripeConfigError as exc:
            raise ApiError(503, "stripe_not_configured", str(exc)) from exc
        request.app.state.verification_gateway = gateway
    return gateway


def _bearer_secret(request: Request) -> str:
    """The API key the request carries: `Authorization: Bearer <secret>` or `x-api-key`.

    `x-api-key` is StripeMeter's header, accepted as is; the same secret in both is
    fine, two different secrets are refused (400: which one did the caller mean?).
    """
    header = request.headers.get("authorization")
    api_key = request.headers.get("x-api-key")
    if api_key is not None:
        api_key = api_key.strip()
        if not api_key:
            raise ApiError(
                401, "unauthorized", "empty x-api-key header: send the key's secret", "x-api-key"
            )
    if not header:
        if api_key is not None:
            return api_key
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <secret>' or 'x-api-key: <secret>'",
            "Authorization",
        )
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(
            401,
            "unauthorized",
            "malformed Authorization header: expected 'Bearer <secret>'",
            "Authorization",
        )
    if api_key is not None and api_key != secret:
        raise ApiError(
            400,
            "conflicting_api_keys",
            "the Authorization and x-api-key headers carry different keys; send one of them",
            "x-api-key",
        )
    return secret


def has_api_key(request: Request) -> bool:
    """Whether the request carries a key in either accepted header."""
    headers = request.headers
    return headers.get("authorization") is not None or headers.get("x-api-key") is not None


_PRINCIPAL_STATE = "stripemeter_principal"


async def get_principal(request: Request) -> Principal:
    """Authenticate the request (or not, under BYPASS_AUTH) and return the caller."""
    known: Principal | None = getattr(request.state, _PRINCIPAL_STATE, None)
    if known is not None:
        return known
    settings: Settings = request.app.state.settings
    if settings.BYPASS_AUTH:
        principal = Principal(tenant_id=None, strict_uuid=settings.STRICT_TENANT_ID_UUID)
    else:
        principal = await _authenticate(request, settings.STRICT_TENANT_ID_UUID)
    setattr(request.state, _PRINCIPAL_STATE, principal)
    return principal


async def _authenticate(request: Request, strict_uuid: bool) -> Principal:
    secret = _bearer_secret(request)
    cache: auth.KeyCache = request.app.state.key_cache
    digest = auth.hash_secret(secret)
    hit, key = cache.get(digest)
    if not hit:
        generation = cache.generation
        pool: ConnectionPoolType = request.app.state.pool

        def lookup() -> auth.KeyInfo | None:
            with pool.connection() as conn:
                return auth.key_for_secret(conn, secret)

        key = await anyio.to_thread.run_sync(lookup)
        cache.put(digest, key, generation=generation)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", "Authorization")
    return Principal(tenant_id=key.tenant_id, scopes=key.scopes, strict_uuid=strict_uuid)


async def authorize(request: Request, scope: KeyScope) -> Principal:
    """The caller, refused (401/403) unless its key has `scope`: for hand-written routes."""
    principal = await get_principal(request)
    principal.require_scope(scope)
    return principal


class ScopeGuard:
    """Dependency: the authenticated caller, refused with 403 unless it has `scope`."""

    def __init__(self, scope: KeyScope) -> None:
        self.scope: KeyScope = scope

    async def __call__(self, request: Request) -> Principal:
        return await authorize(request, self.scope)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
IngestPrincipal = Annotated[Principal, Depends(ScopeGuard("ingest"))]
ReadPrincipal = Annotated[Principal, Depends(ScopeGuard("read"))]
AdminPrincipal = Annotated[Principal, Depends(ScopeGuard("admin"))]
# `?tenantId=`: optional; `Principal.tenant_or` defaults it to the key's tenant.
# A tenant id in a request body: checked and made canonical (`stripemeter.tenants`).
TenantIdBody = Annotated[
    str,
    AfterValidator(check_tenant_id),
    Field(
        description="a tenant id: a name or a UUID",
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_TENANT_CHARS,
            "pattern": TENANT_PATTERN,
        },
    ),
]
TenantIdQuery = Annotated[
    str | None, Query(alias="tenantId", description="a tenant id: a name or a UUID")
]


def _auth_calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        if sub.call is get_principal or isinstance(sub.call, ScopeGuard):
            yield sub.call
        yield from _auth_calls(sub)


class AuthFirstRoute(APIRoute):
    """A route that authenticates and checks its scopes before its body is parsed.

    Use as `APIRouter(route_class=AuthFirstRoute)` on every router with JSON-body
    routes. FastAPI parses the body before running any dependency, so without this a
    stranger's malformed body answers 400 (describing the schema) instead of 401. The
    principal found here is kept on the request; the route's own dependency reuses it.
    Errors raised here are `ApiError`s and get the app's usual JSON answers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        calls = list(_auth_calls(self.dependant))
        if not calls:
            return handler
        scopes = tuple(sorted({c.scope for c in calls if isinstance(c, ScopeGuard)}))

        async def authenticated_first(request: Request) -> Response:
            principal = await get_principal(request)
            for needed in scopes:
                principal.require_scope(needed)
            return await handler(request)

        return authenticated_first


Pool = Annotated[ConnectionPoolType, Depends(get_pool)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
