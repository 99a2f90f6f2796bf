"""Revocation reaches every API process's key cache at once (`auth.RevocationListener`,
real PostgreSQL notifications), and a cache that may have missed one is not trusted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import psycopg

from stripemeter.auth import (
    KeyCache,
    KeyInfo,
    RevocationListener,
    create_api_key,
    hash_secret,
    revoke_api_key,
)

INFO = KeyInfo(tenant_id="t", scopes=frozenset({"read"}))


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_lookup_that_began_before_a_revocation_is_not_cached() -> None:
    cache = KeyCache()
    before = cache.generation
    cache.forget("other-digest")  # a revocation arrives while the lookup runs
    cache.put("digest", INFO, generation=before)
    assert cache.get("digest") == (False, None)
    cache.put("digest", INFO, generation=cache.generation)
    assert cache.get("digest") == (True, INFO)


def test_an_untrusted_cache_always_misses() -> None:
    cache = KeyCache()
    cache.put("digest", INFO)
    cache.trusted = False
    assert cache.get("digest") == (False, None)


def test_the_listener_drops_a_revoked_key_and_distrusts_the_cache_while_disconnected(
    db_url: str,
) -> None:
    with psycopg.connect(db_url) as conn:
        kept = create_api_key(conn, str(uuid.uuid4()), "kept")
        gone = create_api_key(conn, str(uuid.uuid4()), "gone")
    cache = KeyCache(ttl_s=600)
    listener = RevocationListener(db_url, cache)
    listener.start()
    try:
        assert _until(lambda: cache.trusted)
        for key in (kept, gone):
            cache.put(hash_secret(key.secret), INFO, generation=cache.generation)
        with psycopg.connect(db_url) as conn:
            revoke_api_key(conn, gone.id)
        assert _until(lambda: not cache.get(hash_secret(gone.secret))[0], 1.0)
        assert cache.get(hash_secret(kept.secret)) == (True, INFO)

        # The listener's connection dies: until it listens again, nothing is trusted.
        with psycopg.connect(db_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN stripemeter_api_key_revoked%%'"
                " AND datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert killed == [(True,)]
        assert _until(
            lambda: not cache.trusted or cache.get(hash_secret(kept.secret)) == (False, None)
        )
        assert cache.get(hash_secret(kept.secret)) == (False, None)  # cleared on reconnect
        assert _until(lambda: cache.trusted)
    finally:
        listener.stop()
    assert not listener._thread.is_alive()
