"""Fixtures for the service's tests: a real API over real HTTP on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.auth import ALL_SCOPES, create_api_key
from stripemeter.config import load_settings
from tests.support.databases import fresh_database
from tests.support.servers import serve_asgi


@dataclass
class Api:
    """A running API: its base URL, a session carrying a key for `tenant`, its database."""

    base: str
    tenant: str
    session: requests.Session
    db_url: str
    app: Any = None  # the FastAPI app being served

    def url(self, path: str) -> str:
        return self.base + path

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.base + path, timeout=30, **kwargs)

    def scalar(self, sql: str, *params: Any) -> Any:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


@contextmanager
def start_api(db_url: str, *, bypass: bool = False, **settings: Any) -> Iterator[Api]:
    """Serve the API on a free port with auth on (a key for a fresh tenant) or bypassed."""
    tenant = str(uuid.uuid4())
    session = requests.Session()
    if not bypass:
        with psycopg.connect(db_url) as conn:
            key = create_api_key(conn, tenant, "tests", scopes=ALL_SCOPES)
        session.headers["Authorization"] = f"Bearer {key.secret}"
    app = create_app(load_settings(BYPASS_AUTH=bypass, **settings), db_url=db_url)
    with serve_asgi(app) as base:
        yield Api(base=base, tenant=tenant, session=session, db_url=db_url, app=app)
    session.close()


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    """The API with authentication on; `api.session` carries a key for `api.tenant`."""
    with start_api(db_url) as served:
        yield served


@pytest.fixture
def open_api(db_url: str) -> Iterator[Api]:
    """The API under BYPASS_AUTH (no key needed, any tenant)."""
    with start_api(db_url, bypass=True) as served:
        yield served


@pytest.fixture(scope="module")
def module_api(pg_server_url: str) -> Iterator[Api]:
    """One authenticated API and database shared by a module's many small tests."""
    with fresh_database(pg_server_url) as url, start_api(url) as served:
        yield served


def event(tenant: str, **overrides: Any) -> dict[str, Any]:
    """A valid event for `tenant`; keyword arguments replace or add fields."""
    body: dict[str, Any] = {
        "tenantId": tenant,
        "metric": "api_calls",
        "customerRef": "cus_1",
        "quantity": 1,
        "ts": "2026-11-20T10:15:00Z",
    }
    body.update(overrides)
    return body
