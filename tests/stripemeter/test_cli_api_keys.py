"""`stripemeter --version` and `stripemeter api-keys list|revoke`, as users run them: a real
subprocess against real PostgreSQL, and the revoked key refused by a real API over HTTP."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
import requests

from tests.stripemeter.conftest import Api
from tests.stripemeter.test_cli import run


@pytest.fixture
def home() -> Iterator[Path]:
    """A STRIPEMETER_HOME of its own (no stray .env read)."""
    path = Path(tempfile.mkdtemp(prefix="smkeys", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_version_prints_the_package_metadata_version(home: Path) -> None:
    result = run(home, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"stripemeter {version('stripemeter')}\n"


def _create(home: Path, db_url: str, tenant: str, name: str) -> str:
    made = run(home, "api-keys", "create", "--tenant", tenant, "--name", name, DATABASE_URL=db_url)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_list_shows_id_prefix_created_and_revoked_but_never_the_secret(
    home: Path, db_url: str
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    first = _create(home, db_url, tenant, "first")
    second = _create(home, db_url, tenant, "second")
    _create(home, db_url, other, "someone-else")
    with psycopg.connect(db_url) as conn:
        ids = {
            name: str(key_id)
            for name, key_id in conn.execute("SELECT name, id FROM api_keys").fetchall()
        }
    revoked = run(home, "api-keys", "revoke", ids["second"], DATABASE_URL=db_url)
    assert revoked.returncode == 0, revoked.stderr

    listed = run(home, "api-keys", "list", "--tenant", tenant, "--json", DATABASE_URL=db_url)
    assert listed.returncode == 0, listed.stderr
    assert first not in listed.stdout and second not in listed.stdout
    data = json.loads(listed.stdout)["data"]
    assert [(k["id"], k["name"], k["prefix"]) for k in data] == [
        (ids["first"], "first", first[:12]),
        (ids["second"], "second", second[:12]),
    ]
    assert data[0]["revokedAt"] is None and data[1]["revokedAt"] is not None
    assert data[0]["scopes"] == ["ingest", "read"] and data[0]["tenantId"] == tenant
    assert set(data[0]) == {"id", "tenantId", "name", "prefix", "scopes", "createdAt", "revokedAt"}

    text = run(home, "api-keys", "list", "--tenant", tenant, DATABASE_URL=db_url)
    lines = text.stdout.splitlines()
    assert text.returncode == 0 and len(lines) == 2
    assert lines[0].startswith(f"{ids['first']} {first[:12]}... created ")
    assert " active scopes ingest,read name first" in lines[0]
    assert " revoked " in lines[1] and lines[1].endswith("name second")
    assert first not in text.stdout and second not in text.stdout
    assert text.stderr.strip() == f"2 API key(s) for tenant {tenant}"


def test_a_revoked_key_gets_401_at_once_though_the_api_cached_it(home: Path, api: Api) -> None:
    secret = _create(home, api.db_url, api.tenant, "to-revoke")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    status_url = api.url("/v1/writer/status")
    assert session.get(status_url, timeout=10).status_code == 200  # now in the key cache
    assert api.app.state.key_cache.ttl_s >= 10
    key_id = api.scalar("SELECT id::text FROM api_keys WHERE name = 'to-revoke'")

    revoked = run(home, "api-keys", "revoke", key_id, DATABASE_URL=api.db_url)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == (
        f"revoked API key {key_id} ({secret[:12]}...) of tenant {api.tenant}"
    )
    # The notification arrives within milliseconds; the cache would have kept it 10 s.
    deadline = time.monotonic() + 1.0
    answer = session.get(status_url, timeout=10)
    while answer.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        answer = session.get(status_url, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "unknown or revoked API key"
    # The API's own key (another tenant's session) still works: only that key was dropped.
    assert api.get("/v1/writer/status").status_code == 200


def test_revoking_twice_says_already_revoked(home: Path, db_url: str) -> None:
    _create(home, db_url, str(uuid.uuid4()), "twice")
    with psycopg.connect(db_url) as conn:
        key_id = str(conn.execute("SELECT id FROM api_keys").fetchone()[0])  # type: ignore[index]
    assert run(home, "api-keys", "revoke", key_id, DATABASE_URL=db_url).returncode == 0
    again = run(home, "api-keys", "revoke", key_id, DATABASE_URL=db_url)
    assert again.returncode == 0, again.stderr
    assert f"API key {key_id} " in again.stdout
    assert "was already revoked at " in again.stdout and again.stdout.endswith("nothing changed\n")


def test_revoking_an_unknown_id_is_one_line_and_exit_2(home: Path, db_url: str) -> None:
    unknown = str(uuid.uuid4())
    result = run(home, "api-keys", "revoke", unknown, DATABASE_URL=db_url)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: no API key has id {unknown}; `stripemeter api-keys list --tenant ID` "
        "shows the ids\n"
    )


def test_revoking_a_malformed_id_names_the_argument(home: Path) -> None:
    result = run(home, "api-keys", "revoke", "smk_not-an-id")
    assert result.returncode == 2
    assert "argument ID: not an API key id: 'smk_not-an-id'" in result.stderr
    assert "Traceback" not in result.stderr
