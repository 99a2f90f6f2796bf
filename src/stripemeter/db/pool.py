"""The connection pool every request borrows from.

Connections are not autocommit: callers wrap work in `conn.transaction()` or rely on
`pool.connection()` committing on success. psycopg prepares a statement server-side
after it has run a few times on a connection, which the fixed-text ingest statement
benefits from.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

Pool = ConnectionPool[psycopg.Connection]


def open_pool(url: str, *, max_size: int, wait: bool = False, timeout_s: float = 5.0) -> Pool:
    """Open a pool on `url`; with `wait=False` it fills in the background.

    Not waiting lets the API start while the database is down; requests then get 503
    and `/health/ready` says why, instead of the process refusing to start.
    """
    pool: Pool = ConnectionPool(
        url,
        min_size=min(2, max_size),
        max_size=max_size,
        timeout=timeout_s,
        kwargs={"connect_timeout": 5, "application_name": "stripemeter-api"},
        name="stripemeter",
        open=False,
    )
    pool.open(wait=wait, timeout=timeout_s)
    return pool
