"""Request dependencies as typed aliases: who is calling, the pool, the settings.

Route functions declare `principal: CurrentPrincipal`, `pool: Pool`,
`settings: AppSettings`; FastAPI fills them from `app.state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import anyio.to_thread
from fastapi import Depends, Request

from stripemeter import auth
from stripemeter.api.errors import ApiError
from stripemeter.config import Settings
from stripemeter.db.pool import Pool as ConnectionPoolType


@dataclass(frozen=True)
class Principal:
    """The caller: one tenant, or every tenant (`tenant_id=None`) under BYPASS_AUTH."""

    tenant_id: UUID | None

    @property
    def scope(self) -> str:
        """Namespace for request-level idempotency keys: the tenant, or `bypass`."""
        return "bypass" if self.tenant_id is None else str(self.tenant_id)

    def require_tenant(self, tenant_id: UUID) -> None:
        """Refuse (403, naming the tenant) access to a tenant this caller does not own."""
        if self.tenant_id is not None and tenant_id != self.tenant_id:
            raise ApiError(
                403,
                "forbidden_tenant",
                f"this API key belongs to tenant {self.tenant_id} and may not access "
                f"tenant {tenant_id}",
                "tenantId",
            )

    def tenant_or(self, tenant_id: UUID | None) -> UUID:
        """The tenant a read is about: the given one (checked) or the caller's own."""
        if tenant_id is not None:
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


def _bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <secret>'",
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
    return secret


async def get_principal(request: Request) -> Principal:
    """Authenticate the request (or not, under BYPASS_AUTH) and return the caller."""
    settings: Settings = request.app.state.settings
    if settings.BYPASS_AUTH:
        return Principal(tenant_id=None)
    secret = _bearer_secret(request)
    cache: auth.KeyCache = request.app.state.key_cache
    digest = auth.hash_secret(secret)
    hit, tenant_id = cache.get(digest)
    if not hit:
        pool: ConnectionPoolType = request.app.state.pool

        def lookup() -> UUID | None:
            with pool.connection() as conn:
                return auth.tenant_for_secret(conn, secret)

        tenant_id = await anyio.to_thread.run_sync(lookup)
        cache.put(digest, tenant_id)
    if tenant_id is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", "Authorization")
    return Principal(tenant_id=tenant_id)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
Pool = Annotated[ConnectionPoolType, Depends(get_pool)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
