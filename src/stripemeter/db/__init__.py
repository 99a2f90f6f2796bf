"""Postgres seam: where the database is, how to connect, and the schema.

`database_url(settings)` is the only place that decides which server we talk to:
`DATABASE_URL` when set, else the embedded server (started on demand). Everything
else takes a URL or a connection, so tests point it at a real local server.

Every way this package fails to reach the database raises `DatabaseUnavailable` (a
`StripemeterError`): the embedded server not starting (`EmbeddedDatabaseError`), a
connection refused or a URL psycopg cannot parse (`connect`), a pool giving no
connection in time (`pool.DatabaseTimeout`). Callers catch that one class.
"""

from __future__ import annotations

import psycopg

from stripemeter.config import Settings
from stripemeter.db import embedded
from stripemeter.errors import DatabaseUnavailable


def database_url(settings: Settings) -> str:
    """The URL to connect to: `DATABASE_URL`, or the embedded server (started if needed)."""
    if settings.DATABASE_URL:
        return settings.DATABASE_URL
    return embedded.start(settings)


def connect(url: str, *, autocommit: bool = False, timeout_s: int = 10) -> psycopg.Connection:
    """Open one connection, turning driver errors into `DatabaseUnavailable`.

    Refused, timed out, wrong password (`OperationalError`) and a URL psycopg cannot
    parse (`ProgrammingError`) alike: the database cannot be reached with this URL.
    """
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout_s)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {reason}") from exc
