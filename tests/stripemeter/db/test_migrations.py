"""Migrations: applied once, safe to repeat and to race, and the seed's upsert runs verbatim."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from stripemeter.db.migrate import apply_migrations, available_migrations
from tests.support.databases import with_dbname

# The seed's run.sh statement, verbatim (with its shell variables filled in).
SEED_UPSERT = """INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account, price_id, subscription_item_id, currency, active)
VALUES ('{tenant}','api_calls','sum','default','{price}','{item}','USD', true)
ON CONFLICT ON CONSTRAINT unique_active_mapping
DO UPDATE SET price_id=EXCLUDED.price_id,
              subscription_item_id=EXCLUDED.subscription_item_id,
              currency=EXCLUDED.currency,
              aggregation=EXCLUDED.aggregation,
              stripe_account=EXCLUDED.stripe_account,
              active=true;"""  # noqa: E501

TENANT = "8f2c7b1e-0000-4000-8000-000000000001"


def test_reapplying_migrations_applies_nothing(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert apply_migrations(conn) == []
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in available_migrations()]


def test_two_processes_migrating_at_once_apply_each_file_once(pg_server_url: str) -> None:
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS race_db WITH (FORCE)")
        admin.execute("CREATE DATABASE race_db")
    url = with_dbname(pg_server_url, "race_db")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(url) as conn:
                results.append(apply_migrations(conn))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = [m.name for m in available_migrations()]
    assert sorted(results, key=len) == [[], names]


def test_seed_price_mapping_upsert_runs_verbatim_twice(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(SEED_UPSERT.format(tenant=TENANT, price="price_A", item="si_A"))
        conn.execute(SEED_UPSERT.format(tenant=TENANT, price="price_B", item="si_B"))
        rows = conn.execute(
            "SELECT price_id, subscription_item_id, currency, active FROM price_mappings"
        ).fetchall()
    assert rows == [("price_B", "si_B", "USD", True)]


def test_ledger_rows_cannot_be_updated_or_deleted(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO events (tenant_id, idempotency_key, metric, customer_ref, quantity, ts)"
            " VALUES (%s, 'k1', 'api_calls', 'cus_1', 1, now())",
            (TENANT,),
        )
        conn.commit()
        for statement in ("UPDATE events SET quantity = 2", "DELETE FROM events"):
            try:
                conn.execute(statement)
            except psycopg.errors.RaiseException as exc:
                assert "append-only" in str(exc)
                conn.rollback()
            else:  # pragma: no cover
                raise AssertionError(f"{statement} was allowed")


def test_0013_turns_every_tenant_id_into_text_keeping_the_rows_canonical(
    pg_server_url: str,
) -> None:
    name = f"m13_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(pg_server_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # The schema as it was before 0013, with a tenant's rows in it.
            conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in available_migrations():
                if migration.version < 13:
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
            conn.execute(
                "INSERT INTO api_keys (tenant_id, prefix, secret_sha256)"
                " VALUES (%s::uuid, 'smk_x', 'abc')",
                (TENANT.upper(),),
            )
            conn.execute(
                "INSERT INTO push_state (tenant_id, metric, customer_ref, hour_start, event_name,"
                " stripe_customer_id, aggregation) VALUES (%s::uuid, 'm', 'c', now(), 'e',"
                " 'cus_1', 'sum')",
                (TENANT,),
            )
            assert apply_migrations(conn)[0] == "0013_tenant_id_text.sql"
            types = dict(
                conn.execute(
                    "SELECT table_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND column_name = 'tenant_id'"
                ).fetchall()
            )
            assert set(types.values()) == {"text"} and len(types) >= 11
            assert conn.execute("SELECT tenant_id FROM api_keys").fetchone() == (TENANT,)
            # The outbox's key to push_state is back, on text now.
            fks = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                " AND conrelid = 'meter_pushes'::regclass"
            ).fetchone()
            assert fks == (1,)
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute(
                    "INSERT INTO meter_pushes (tenant_id, metric, customer_ref, hour_start,"
                    " event_name, stripe_customer_id, meter_id, customer_key, value_key, value,"
                    " covers, identifier, event_ts) VALUES ('acme', 'm', 'c', now(), 'e',"
                    " 'cus_1', 'mtr', 'k', 'v', 1, 1, 'id-1', 1)"
                )
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
