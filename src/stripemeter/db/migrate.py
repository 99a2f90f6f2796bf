"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in order, once.

`schema_migrations` records what was applied. An advisory lock serialises concurrent
runs (two processes starting at once both succeed; the second finds nothing to do),
and each file runs in its own transaction together with its bookkeeping row, so a
failed migration leaves no half-applied schema.

`require_current_schema` is the check of the processes that do not migrate (the
workers, `api --no-migrate`, the operator commands): `SchemaNotCurrent` names the
pending files and the command that applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from stripemeter.errors import SchemaNotCurrent

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every process.
_MIGRATION_LOCK_KEY = 0x5157_4D45_5445_5201


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version number, file name and text."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The migration files shipped with the package, ordered by version."""
    found = []
    for entry in resources.files("stripemeter.db").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    """Names of shipped migrations the database has not recorded yet."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    done: set[int] = set()
    if exists and exists[0]:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [m.name for m in available_migrations() if m.version not in done]


def require_current_schema(conn: psycopg.Connection) -> None:
    """Raise `SchemaNotCurrent` unless every shipped migration is applied."""
    pending = pending_migrations(conn)
    if pending:
        raise SchemaNotCurrent(pending)


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    conn.autocommit = True
    applied_now: list[str] = []
    # Lock before creating the bookkeeping table: CREATE TABLE IF NOT EXISTS races.
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in available_migrations():
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))
    return applied_now
