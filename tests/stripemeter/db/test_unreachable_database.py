"""Every way `stripemeter.db` cannot reach PostgreSQL is a `DatabaseUnavailable`.

Real attempts only: a closed port on 127.0.0.1, a URL psycopg cannot parse, a data
directory that cannot be created, and the real API answering while its pool cannot
connect.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg_pool
import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.config import load_settings
from stripemeter.db import connect, database_url, embedded
from stripemeter.db.pool import open_pool
from stripemeter.errors import (
    DatabaseTimeout,
    DatabaseUnavailable,
    EmbeddedDatabaseError,
    StripemeterError,
)
from tests.support.servers import free_port, serve_asgi


@pytest.fixture
def closed_url() -> str:
    """A PostgreSQL URL on a 127.0.0.1 port nothing listens on."""
    return f"postgresql://nobody@127.0.0.1:{free_port()}/none"


@pytest.fixture
def short_home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="smdb", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_connect_to_a_closed_port_is_database_unavailable(closed_url: str) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        connect(closed_url, timeout_s=2)
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL: connection failed:")
    assert "Connection refused" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nonsense", 'missing "=" after "nonsense" in connection info string'),
        ("postgresql://u@127.0.0.1:1/db?bogus=1", 'invalid URI query parameter: "bogus"'),
    ],
    ids=["not-a-url", "unknown-parameter"],
)
def test_a_url_psycopg_cannot_parse_is_database_unavailable(url: str, reason: str) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        connect(url)
    assert str(caught.value) == f"cannot connect to PostgreSQL: {reason}"


def test_an_uncreatable_data_directory_is_an_embedded_database_error(short_home: Path) -> None:
    (short_home / "a-file").write_text("x")
    settings = load_settings(STRIPEMETER_HOME=str(short_home / "a-file" / "home"))
    with pytest.raises(EmbeddedDatabaseError) as caught:
        database_url(settings)
    assert isinstance(caught.value, DatabaseUnavailable)
    pgdata = short_home / "a-file" / "home" / "pgdata"
    assert str(caught.value) == (
        f"could not start the embedded PostgreSQL in {pgdata}: cannot create the data "
        "directory (Not a directory); set STRIPEMETER_HOME to a writable directory or "
        "DATABASE_URL to a running server"
    )


def test_running_url_of_a_never_started_server_is_none(short_home: Path) -> None:
    settings = load_settings(STRIPEMETER_HOME=str(short_home))
    assert embedded.running_url(settings) is None
    assert embedded.stop(settings) is False


def test_a_pool_that_cannot_connect_while_waiting_is_a_database_timeout(closed_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseTimeout) as caught:
        open_pool(closed_url, max_size=1, wait=True, timeout_s=1.0, name="probe")
    assert time.monotonic() - started < 5
    assert str(caught.value) == "pool 'probe' could not connect to PostgreSQL within 1 s"
    # One class for the service's handlers, the documented one for psycopg's users.
    assert isinstance(caught.value, DatabaseUnavailable)
    assert isinstance(caught.value, StripemeterError)
    assert isinstance(caught.value, psycopg_pool.PoolTimeout)


def test_borrowing_from_a_pool_that_cannot_connect_is_a_database_timeout(
    closed_url: str,
) -> None:
    pool = open_pool(closed_url, max_size=1, timeout_s=0.5, name="probe")
    try:
        with pytest.raises(DatabaseTimeout) as caught, pool.connection():
            pass
        assert str(caught.value) == (
            "no PostgreSQL connection from pool 'probe' within 0.5 s "
            "(the database is unreachable or every connection is busy)"
        )
        with pytest.raises(DatabaseTimeout), pool.connection(timeout=0.2):
            pass
    finally:
        pool.close()


def test_the_api_answers_503_while_its_database_cannot_be_reached(closed_url: str) -> None:
    settings = load_settings(BYPASS_AUTH=True, DATABASE_URL=closed_url)
    with serve_asgi(create_app(settings, db_url=closed_url)) as base:
        answer = requests.get(
            f"{base}/v1/mappings",
            params={"tenantId": "5b0e4a0e-3c59-4d5e-9a47-0c6bd7a1a001"},
            timeout=30,
        )
    assert answer.status_code == 503
    assert answer.json() == {
        "error": {
            "code": "database_unavailable",
            "message": "the database is unreachable; retry later",
            "field": None,
        }
    }
