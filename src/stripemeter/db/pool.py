"""The connection pool every request borrows from.

Connections are not autocommit: callers wrap work in `conn.transaction()` or rely on
`pool.connection()` committing on success. psycopg prepares a statement server-side
after it has run a few times on a connection, which the fixed-text ingest statement
benefits from.

The API opens two pools: the request pool (`DB_POOL_MAX_SIZE`) for ingest and reads,
and a small background pool (`BACKGROUND_POOL_MAX_SIZE`, named `background`) for
reconciliation runs. Background work can then never take the connections requests
need, however many runs are asked for or however long Stripe hangs.

A pool that cannot hand out a connection in time raises `DatabaseTimeout`: a
`DatabaseUnavailable` for the service's handlers, and still the `PoolTimeout` psycopg
documents for code that catches that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from stripemeter.errors import DatabaseTimeout


class Pool(ConnectionPool[psycopg.Connection]):
    """A psycopg pool whose timeouts are `DatabaseTimeout`, with the pool and wait named."""

    def getconn(self, timeout: float | None = None) -> psycopg.Connection:
        """A connection, or `DatabaseTimeout` after `timeout` (default: the pool's)."""
        try:
            return super().getconn(timeout)
        except PoolTimeout as exc:
            waited = self.timeout if timeout is None else timeout
            raise DatabaseTimeout(
                f"no PostgreSQL connection from pool {self.name!r} within {waited:g} s "
                "(the database is unreachable or every connection is busy)"
            ) from exc


# Code that runs both on one connection (tests, `--drain`) and on a pool (workers).
ConnOrPool = psycopg.Connection | Pool


@contextmanager
def borrow(conn_or_pool: ConnOrPool) -> Iterator[psycopg.Connection]:
    """A connection from a pool (returned after the block), or the given connection."""
    if isinstance(conn_or_pool, psycopg.Connection):
        yield conn_or_pool
    else:
        with conn_or_pool.connection() as conn:
            yield conn


def open_pool(
    url: str,
    *,
    max_size: int,
    wait: bool = False,
    timeout_s: float = 5.0,
    name: str = "stripemeter",
    min_size: int = 2,
) -> Pool:
    """Open a pool on `url`; with `wait=False` it fills in the background.

    Not waiting lets the API start while the database is down; requests then get 503
    and `/health/ready` says why, instead of the process refusing to start. Waiting,
    `DatabaseTimeout` when the first connections are not made in `timeout_s`. `name`
    tells the pools apart in logs and in `pg_stat_activity` (`application_name`
    `stripemeter-api` for the default, `stripemeter-<name>` otherwise).
    """
    app_name = "stripemeter-api" if name == "stripemeter" else f"stripemeter-{name}"
    pool = Pool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        timeout=timeout_s,
        kwargs={"connect_timeout": 5, "application_name": app_name},
        name=name,
        open=False,
    )
    try:
        pool.open(wait=wait, timeout=timeout_s)
    except PoolTimeout as exc:
        pool.close()
        raise DatabaseTimeout(
            f"pool {name!r} could not connect to PostgreSQL within {timeout_s:g} s"
        ) from exc
    return pool
