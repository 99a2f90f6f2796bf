"""API keys: created once, stored as a SHA-256 hash, each bound to one tenant and scoped.

Scopes say what a key may do: `ingest` (send usage), `read` (usage, events, reports,
writer status, bindings) and `admin` (mappings, customer bindings, reconciliation
runs, per-tenant detail on /metrics). A new key gets `ingest` and `read` unless asked
otherwise; `admin` is given only on request, since it decides which Stripe prices and
customers the tenant bills. Keys that existed before scopes have all three.

A secret looks like `smk_<43 url-safe chars>`; only its hash and a short prefix (to
recognise it in listings) are stored. `KeyCache` keeps recent look-ups for a few
seconds so the hot ingest path does not pay a database round trip per request;
revoking a key therefore takes effect within `KeyCache.ttl_s`.

`BYPASS_AUTH` turns checking off for demos; `check_bypass_allowed` refuses it on
any address that is not loopback unless the operator insists.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal, get_args
from uuid import UUID

import psycopg

from stripemeter.errors import ConfigError, UnknownScope

SECRET_PREFIX = "smk_"

Scope = Literal["ingest", "read", "admin"]
ALL_SCOPES: Final[frozenset[str]] = frozenset(get_args(Scope))
DEFAULT_SCOPES: Final[tuple[Scope, ...]] = ("ingest", "read")


def check_scopes(scopes: Collection[str]) -> frozenset[str]:
    """The scopes as a set, refusing an empty set or an unknown name (naming the valid ones)."""
    chosen = frozenset(scopes)
    unknown = sorted(chosen - ALL_SCOPES)
    if unknown:
        raise UnknownScope(
            f"unknown scope {unknown[0]!r}; choose from {', '.join(sorted(ALL_SCOPES))}"
        )
    if not chosen:
        raise UnknownScope("a key needs at least one scope: ingest, read or admin")
    return chosen


@dataclass(frozen=True)
class KeyInfo:
    """What an active key grants: its tenant and scopes."""

    tenant_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class CreatedKey:
    """A new API key: its id, tenant, scopes, and the secret (shown once, never stored)."""

    id: UUID
    tenant_id: str
    secret: str
    scopes: frozenset[str] = frozenset(DEFAULT_SCOPES)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(
    conn: psycopg.Connection,
    tenant_id: str,
    name: str | None,
    *,
    scopes: Collection[str] = DEFAULT_SCOPES,
) -> CreatedKey:
    """Create a key for `tenant_id` with `scopes`, storing only its hash; return the secret once.

    Raises UnknownScope for an empty or unknown scope (nothing is stored).
    """
    chosen = check_scopes(scopes)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO api_keys (tenant_id, name, prefix, secret_sha256, scopes)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (tenant_id, name, secret[:12], hash_secret(secret), sorted(chosen)),
    ).fetchone()
    conn.commit()
    assert row is not None
    return CreatedKey(id=row[0], tenant_id=tenant_id, secret=secret, scopes=chosen)


def key_for_secret(conn: psycopg.Connection, secret: str) -> KeyInfo | None:
    """The tenant and scopes of an active (not revoked) key with this secret, or None."""
    row = conn.execute(
        "SELECT tenant_id, scopes FROM api_keys WHERE secret_sha256 = %s AND revoked_at IS NULL",
        (hash_secret(secret),),
    ).fetchone()
    return None if row is None else KeyInfo(tenant_id=row[0], scopes=frozenset(row[1]))


class KeyCache:
    """Thread-safe secret-hash -> key cache with a short time to live.

    Scopes are cached with the tenant, so narrowing a key (revoke and re-create) takes
    effect within `ttl_s`, like a revocation.
    """

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, KeyInfo | None]:
        """(hit, key or None for a known-bad key)."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, key: KeyInfo | None) -> None:
        """Remember a look-up result (unknown keys too, to blunt guessing floods)."""
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl_s, key)


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 — addresses other machines cannot reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bypass_allowed(bypass_auth: bool, host: str, *, insecure_anywhere: bool) -> None:
    """Refuse `BYPASS_AUTH` on a non-loopback address unless explicitly forced."""
    if bypass_auth and not is_loopback(host) and not insecure_anywhere:
        raise ConfigError(
            f"BYPASS_AUTH=1 is refused when listening on {host}: anyone who can reach it "
            "could write usage for any tenant. Listen on 127.0.0.1, or pass "
            "--insecure-bypass-auth-anywhere if you really mean it."
        )
