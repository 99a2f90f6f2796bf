"""Real PostgreSQL for tests: one server per session, one fresh database per test.

The server is the embedded one (pgserver) in a temporary STRIPEMETER_HOME, or the
server named by STRIPEMETER_TEST_DATABASE_URL. A migrated template database is built
once; each test gets `CREATE DATABASE ... TEMPLATE` (fast) and it is dropped after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stripemeter.db.migrate import apply_migrations, available_migrations

TEMPLATE_DB = "stripemeter_template"


def with_dbname(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def build_template(server_url: str) -> None:
    """(Re)create the migrated template database on the server."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    with psycopg.connect(with_dbname(server_url, TEMPLATE_DB)) as conn:
        apply_migrations(conn)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new migrated database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    try:
        yield with_dbname(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_before(server_url: str, version: int) -> Iterator[str]:
    """A new database with every migration below `version` applied (recorded as the runner
    records them), for tests of migration `version` on existing rows; dropped afterwards."""
    name = f"m{version}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(server_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in available_migrations():
                if migration.version < version:
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
