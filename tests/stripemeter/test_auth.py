"""API keys: hashed at rest, bound to one tenant, scoped; BYPASS_AUTH only on loopback."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest
import requests

from stripemeter.auth import (
    check_bypass_allowed,
    create_api_key,
    is_loopback,
    key_for_secret,
)
from stripemeter.db.migrate import available_migrations
from stripemeter.errors import ConfigError, UnknownScope
from tests.stripemeter.conftest import Api, event
from tests.support.databases import with_dbname


def test_request_without_key_is_401(api: Api) -> None:
    answer = requests.post(
        api.url("/v1/events/ingest"), json={"events": [event(api.tenant)]}, timeout=10
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["message"].startswith("missing API key")
    assert api.scalar("SELECT count(*) FROM events") == 0


def test_key_of_tenant_a_writing_tenant_b_is_403_naming_b(api: Api) -> None:
    tenant_b = str(uuid.uuid4())
    batch = {"events": [event(api.tenant), event(tenant_b)]}
    answer = api.post("/v1/events/ingest", json=batch)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "forbidden_tenant"
    assert tenant_b in error["message"] and api.tenant in error["message"]
    assert error["field"] == "events[1].tenantId"
    assert api.scalar("SELECT count(*) FROM events") == 0


def test_key_reads_only_its_tenant(api: Api) -> None:
    other = str(uuid.uuid4())
    for path, params in (
        ("/v1/events", {"tenantId": other}),
        (
            "/v1/usage",
            {
                "tenantId": other,
                "metric": "m",
                "from": "2026-11-20T00:00:00Z",
                "to": "2026-11-21T00:00:00Z",
            },
        ),
        ("/v1/mappings", {"tenantId": other}),
    ):
        answer = api.get(path, params=params)
        assert answer.status_code == 403, path
        assert other in answer.json()["error"]["message"]


def test_reads_default_to_the_keys_tenant(api: Api) -> None:
    api.post("/v1/events/ingest", json={"events": [event(api.tenant, quantity=3)]})
    listed = api.get("/v1/events").json()["events"]
    assert [(e["tenantId"], e["quantity"]) for e in listed] == [(api.tenant, "3")]


def test_only_the_hash_of_a_secret_is_stored(db_url: str) -> None:
    tenant = str(uuid.uuid4())
    with psycopg.connect(db_url) as conn:
        created = create_api_key(conn, tenant, "ci")
        stored = conn.execute("SELECT prefix, secret_sha256, name FROM api_keys").fetchall()
        info = key_for_secret(conn, created.secret)
        assert info is not None and info.tenant_id == tenant
        assert key_for_secret(conn, created.secret + "x") is None
        conn.execute("UPDATE api_keys SET revoked_at = now()")
        assert key_for_secret(conn, created.secret) is None
    digest = hashlib.sha256(created.secret.encode()).hexdigest()
    assert stored == [(created.secret[:12], digest, "ci")]
    assert created.secret.startswith("smk_") and len(created.secret) > 40


def test_bypass_lets_any_tenant_write_without_a_key(open_api: Api) -> None:
    tenants = [str(uuid.uuid4()), str(uuid.uuid4())]
    batch = {"events": [event(t) for t in tenants]}
    answer = requests.post(open_api.url("/v1/events/ingest"), json=batch, timeout=10)
    assert answer.status_code == 200 and answer.json()["accepted"] == 2
    usage = requests.get(
        open_api.url("/v1/usage"),
        params={
            "metric": "api_calls",
            "from": "2026-11-20T00:00:00Z",
            "to": "2026-11-21T00:00:00Z",
        },
        timeout=10,
    )
    assert usage.status_code == 400
    assert usage.json()["error"]["field"] == "tenantId"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_allow_bypass(host: str) -> None:
    assert is_loopback(host)
    check_bypass_allowed(True, host, insecure_anywhere=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com"])
def test_bypass_on_other_addresses_is_refused_unless_forced(host: str) -> None:
    with pytest.raises(ConfigError, match="BYPASS_AUTH=1 is refused when listening on"):
        check_bypass_allowed(True, host, insecure_anywhere=False)
    check_bypass_allowed(True, host, insecure_anywhere=True)
    check_bypass_allowed(False, host, insecure_anywhere=False)


def test_new_keys_default_to_ingest_and_read(db_url: str) -> None:
    tenant = str(uuid.uuid4())
    with psycopg.connect(db_url) as conn:
        plain = create_api_key(conn, tenant, "plain")
        admin = create_api_key(conn, tenant, "ops", scopes=["admin"])
        assert plain.scopes == frozenset({"ingest", "read"})
        found = key_for_secret(conn, admin.secret)
        assert found is not None and (found.tenant_id, found.scopes) == (tenant, {"admin"})
        stored = conn.execute("SELECT name, scopes FROM api_keys ORDER BY created_at").fetchall()
    assert stored == [("plain", ["ingest", "read"]), ("ops", ["admin"])]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["root"], "unknown scope 'root'; choose from admin, ingest, read"),
        ([], "a key needs at least one scope: ingest, read or admin"),
    ],
)
def test_unknown_or_no_scope_is_refused_and_nothing_stored(
    db_url: str, scopes: list[str], message: str
) -> None:
    with psycopg.connect(db_url) as conn:
        with pytest.raises(UnknownScope) as refused:
            create_api_key(conn, str(uuid.uuid4()), "x", scopes=scopes)
        assert str(refused.value) == message
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)


def test_the_database_refuses_an_unknown_scope(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO api_keys (tenant_id, prefix, secret_sha256, scopes)"
            " VALUES (gen_random_uuid(), 'p', 'h', ARRAY['root'])"
        )


def test_keys_made_before_scopes_keep_every_scope(pg_server_url: str) -> None:
    """Migration 0006: existing keys get ingest, read and admin; later rows ingest + read."""
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS scopes_db WITH (FORCE)")
        admin.execute("CREATE DATABASE scopes_db")
    scopes_migration = next(m for m in available_migrations() if m.name.endswith("_scopes.sql"))
    with psycopg.connect(with_dbname(pg_server_url, "scopes_db"), autocommit=True) as conn:
        for migration in available_migrations():
            if migration.version < scopes_migration.version:
                conn.execute(migration.sql.encode())
        conn.execute(
            "INSERT INTO api_keys (tenant_id, prefix, secret_sha256)"
            " VALUES (gen_random_uuid(), 'old', 'h-old')"
        )
        conn.execute(scopes_migration.sql.encode())
        conn.execute(
            "INSERT INTO api_keys (tenant_id, prefix, secret_sha256)"
            " VALUES (gen_random_uuid(), 'new', 'h-new')"
        )
        rows = conn.execute("SELECT prefix, scopes FROM api_keys ORDER BY prefix").fetchall()
    assert rows == [("new", ["ingest", "read"]), ("old", ["ingest", "read", "admin"])]
