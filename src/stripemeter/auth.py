"""API keys: created once, stored as a SHA-256 hash, each bound to one tenant and scoped.

Scopes say what a key may do: `ingest` (send usage), `read` (usage, events, reports,
writer status, bindings) and `admin` (mappings, customer bindings, reconciliation
runs, per-tenant detail on /metrics). A new key gets `ingest` and `read` unless asked
otherwise; `admin` is given only on request, since it decides which Stripe prices and
customers the tenant bills. Keys that existed before scopes have all three.

A secret looks like `smk_<43 url-safe chars>`; only its hash and a short prefix (to
recognise it in listings) are stored. `KeyCache` keeps recent look-ups for a few
seconds so the hot ingest path does not pay a database round trip per request.

Revocation is immediate although keys are cached: `revoke_api_key` sends a PostgreSQL
notification (`REVOKED_CHANNEL`, the key's hash) in the transaction that revokes it, and
each API process's `RevocationListener` drops that key from its cache as it arrives
(milliseconds). While the listener is not connected the cache is not trusted (every
request looks its key up), so a notification missed then cannot leave a revoked key
working; without a listener (tests, one-off callers) the cache's `ttl_s` bounds it.
`list_api_keys` shows keys without their secret (never stored) or hash.

`BYPASS_AUTH` turns checking off for demos; `check_bypass_allowed` refuses it on
any address that is not loopback unless the operator insists.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args
from uuid import UUID

import psycopg

from stripemeter.errors import ConfigError, UnknownApiKey, UnknownScope

log = logging.getLogger("stripemeter.auth")

SECRET_PREFIX = "smk_"
# The PostgreSQL notification channel a revocation is announced on (payload: the hash).
REVOKED_CHANNEL = "stripemeter_api_key_revoked"

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


@dataclass(frozen=True)
class KeyRecord:
    """A stored key as listings show it: never its secret or hash, only its prefix."""

    id: UUID
    tenant_id: str
    name: str | None
    prefix: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, object]:
        """The key as `api-keys list --json` prints it."""
        return {
            "id": str(self.id),
            "tenantId": self.tenant_id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": sorted(self.scopes),
            "createdAt": self.created_at.isoformat(),
            "revokedAt": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


_RECORD_COLUMNS = "id, tenant_id, name, prefix, scopes, created_at, revoked_at"


def _record(row: tuple[object, ...]) -> KeyRecord:
    key_id, tenant, name, prefix, scopes, created, revoked = row
    assert isinstance(key_id, UUID) and isinstance(created, datetime)
    return KeyRecord(
        id=key_id,
        tenant_id=str(tenant),
        name=None if name is None else str(name),
        prefix=str(prefix),
        scopes=frozenset(scopes),  # type: ignore[call-overload]
        created_at=created,
        revoked_at=revoked if isinstance(revoked, datetime) else None,
    )


def list_api_keys(conn: psycopg.Connection, tenant_id: str) -> list[KeyRecord]:
    """The tenant's keys, revoked ones included, oldest first."""
    rows = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id",
        (tenant_id,),
    ).fetchall()
    conn.commit()
    return [_record(row) for row in rows]


def revoke_api_key(conn: psycopg.Connection, key_id: UUID) -> tuple[KeyRecord, bool]:
    """Revoke the key `key_id`: (its record, True) when this call revoked it, (its
    record, False) when it was already revoked. Every API process listening drops it
    from its cache when the transaction commits (`REVOKED_CHANNEL`).

    Raises UnknownApiKey when no key has that id.
    """
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
        f" RETURNING {_RECORD_COLUMNS}, secret_sha256",
        (key_id,),
    ).fetchone()
    if row is not None:
        conn.execute("SELECT pg_notify(%s, %s)", (REVOKED_CHANNEL, row[-1]))
        conn.commit()
        return _record(row[:-1]), True
    found = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM api_keys WHERE id = %s", (key_id,)
    ).fetchone()
    conn.commit()
    if found is None:
        raise UnknownApiKey(
            f"no API key has id {key_id}; `stripemeter api-keys list --tenant ID` shows the ids"
        )
    return _record(found), False


def key_for_secret(conn: psycopg.Connection, secret: str) -> KeyInfo | None:
    """The tenant and scopes of an active (not revoked) key with this secret, or None."""
    row = conn.execute(
        "SELECT tenant_id, scopes FROM api_keys WHERE secret_sha256 = %s AND revoked_at IS NULL",
        (hash_secret(secret),),
    ).fetchone()
    return None if row is None else KeyInfo(tenant_id=row[0], scopes=frozenset(row[1]))


class KeyCache:
    """Thread-safe secret-hash -> key cache with a short time to live.

    Scopes are cached with the tenant. A key's scopes never change (narrowing one means
    revoking it and creating another), and a revocation reaches the cache through
    `RevocationListener` at once, or within `ttl_s` where no listener runs.
    """

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()
        # Bumped by every forget/clear: a look-up that started before one is not stored.
        self.generation = 0
        # False while a RevocationListener is disconnected: every get is a miss.
        self.trusted = True

    def get(self, digest: str) -> tuple[bool, KeyInfo | None]:
        """(hit, key or None for a known-bad key)."""
        entry = self._entries.get(digest)
        if not self.trusted or entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, key: KeyInfo | None, *, generation: int | None = None) -> None:
        """Remember a look-up result (unknown keys too, to blunt guessing floods).

        With `generation` (read before the look-up began), a result is dropped when a
        revocation arrived meanwhile: it may predate that revocation.
        """
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl_s, key)

    def forget(self, digest: str) -> None:
        """Drop one key (it was revoked)."""
        with self._lock:
            self.generation += 1
            self._entries.pop(digest, None)

    def clear(self) -> None:
        """Drop every key."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


class RevocationListener:
    """A thread listening on `REVOKED_CHANNEL` with its own connection, dropping each
    revoked key from `cache` as its notification arrives.

    The cache is trusted only while the listener is connected: on start and after a lost
    connection it is cleared and bypassed until LISTEN runs again.
    """

    RETRY_S = 1.0

    def __init__(self, db_url: str, cache: KeyCache) -> None:
        self.db_url = db_url
        self.cache = cache
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-revocations", daemon=True)

    def start(self) -> None:
        """Start listening (the cache is bypassed until the first LISTEN succeeds)."""
        self.cache.trusted = False
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (within about a second)."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failing = False  # log an outage once, and its end
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {REVOKED_CHANNEL}")
                    self.cache.clear()
                    self.cache.trusted = True
                    if failing:
                        log.info("API key revocations: listening again; keys cached again")
                        failing = False
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.cache.forget(note.payload)
            except psycopg.Error as exc:
                if not failing:
                    log.warning(
                        "API key revocations: not listening (%s); every request looks its "
                        "key up until the database answers again",
                        type(exc).__name__,
                    )
                failing = True
            self.cache.trusted = False
            self.cache.clear()
            self._stop.wait(self.RETRY_S)


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
