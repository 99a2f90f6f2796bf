"""Fixtures every test package shares: a real PostgreSQL and real HTTP servers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stripemeter.config import load_settings
from stripemeter.db import embedded
from tests.support.databases import build_template, fresh_database
from tests.support.emulator import running_emulator


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a real PostgreSQL server for this test session (embedded unless overridden).

    STRIPEMETER_TEST_DATABASE_URL names a server to use; STRIPEMETER_TEST_POSTGRES=container
    starts a testcontainers PostgresContainer($POSTGRES_IMAGE, default postgres:16-alpine)
    instead of the embedded server (its port published on 127.0.0.1 only).
    """
    if os.environ.get("STRIPEMETER_TEST_POSTGRES") == "container":
        from testcontainers.community.postgres import PostgresContainer

        image = os.environ.get("POSTGRES_IMAGE") or "postgres:16-alpine"
        container = PostgresContainer(image, driver=None)
        container.ports = {5432: ("127.0.0.1", None)}  # bind loopback, any free port
        try:
            container.start()
        except Exception as exc:  # the engine or the image is missing: say so, once
            pytest.fail(f"STRIPEMETER_TEST_POSTGRES=container: cannot start {image}: {exc}")
        try:
            url = container.get_connection_url(host="127.0.0.1")
            build_template(url)
            yield url
        finally:
            container.stop()
        return
    external = os.environ.get("STRIPEMETER_TEST_DATABASE_URL")
    if external:
        build_template(external)
        yield external
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, and a concurrent session
    # would delete this live data directory. A short path also keeps the socket path legal.
    home = Path(tempfile.mkdtemp(prefix="smtest-", dir="/tmp"))
    settings = load_settings(STRIPEMETER_HOME=str(home))
    url = embedded.start(settings)
    try:
        build_template(url)
        yield url
    finally:
        embedded.stop(settings)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def emulator_url() -> Iterator[str]:
    """Base URL of a real Stripe emulator on 127.0.0.1, fresh state, for one test."""
    with running_emulator() as url:
        yield url


@pytest.fixture
def db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with fresh_database(pg_server_url) as url:
        yield url
