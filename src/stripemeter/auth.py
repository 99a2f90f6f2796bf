"""API keys: created once, stored as a SHA-256 hash, each bound to one tenant.

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
from dataclasses import dataclass
from uuid import UUID

import psycopg

from stripemeter.config import ConfigError

SECRET_PREFIX = "smk_"


@dataclass(frozen=True)
class CreatedKey:
    """A new API key: its id, tenant, and the secret (shown once, never stored)."""

    id: UUID
    tenant_id: UUID
    secret: str


def hash_secret(secret: str) -> str:
    """The stored form of a secret: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(conn: psycopg.Connection, tenant_id: UUID, name: str | None) -> CreatedKey:
    """Create a key for `tenant_id`, storing only its hash; return the secret once."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO api_keys (tenant_id, name, prefix, secret_sha256)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (tenant_id, name, secret[:12], hash_secret(secret)),
    ).fetchone()
    conn.commit()
    assert row is not None
    return CreatedKey(id=row[0], tenant_id=tenant_id, secret=secret)


def tenant_for_secret(conn: psycopg.Connection, secret: str) -> UUID | None:
    """The tenant of an active (not revoked) key with this secret, or None."""
    row = conn.execute(
        "SELECT tenant_id FROM api_keys WHERE secret_sha256 = %s AND revoked_at IS NULL",
        (hash_secret(secret),),
    ).fetchone()
    return None if row is None else row[0]


class KeyCache:
    """Thread-safe secret-hash -> tenant cache with a short time to live."""

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, UUID | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, UUID | None]:
        """(hit, tenant or None for a known-bad key)."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, tenant_id: UUID | None) -> None:
        """Remember a look-up result (unknown keys too, to blunt guessing floods)."""
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl_s, tenant_id)


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
