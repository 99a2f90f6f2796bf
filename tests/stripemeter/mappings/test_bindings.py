"""Customer bindings: the API, the operator's CLI, and the look-ups the writer and
reconciler use, against the emulator and a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import stripe

from stripemeter.auth import create_api_key
from stripemeter.mappings.bindings import bound_customers, stripe_customer_for
from tests.stripemeter.conftest import start_api
from tests.stripemeter.test_cli import home, run  # noqa: F401  (home is a fixture)
from tests.support.emulator import TEST_KEY, sdk_client


@dataclass
class Served:
    """The API on the emulator with an admin+read key of `tenant`."""

    base: str
    tenant: str
    http: requests.Session
    db_url: str
    stripe: stripe.StripeClient

    def put(self, ref: str, body: dict[str, Any]) -> requests.Response:
        return self.http.put(f"{self.base}/v1/customers/{ref}/binding", json=body, timeout=30)

    def customer(self) -> str:
        return self.stripe.v1.customers.create({"email": "b@example.com"}).id

    def rows(self) -> list[tuple[str, str, str, bool]]:
        with psycopg.connect(self.db_url) as conn:
            rows = conn.execute(
                "SELECT tenant_id::text, customer_ref, stripe_customer_id, verified_at IS NOT NULL"
                " FROM customer_bindings ORDER BY tenant_id, customer_ref"
            ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), bool(r[3])) for r in rows]


@pytest.fixture
def served(emulator_url: str, db_url: str) -> Iterator[Served]:
    tenant = str(uuid.uuid4())
    with psycopg.connect(db_url) as conn:
        secret = create_api_key(conn, tenant, "ops", scopes=["admin", "read"]).secret
    with start_api(db_url, STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY) as api:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {secret}"
        yield Served(api.base, str(tenant), http, db_url, sdk_client(emulator_url))
        http.close()


def test_put_binds_then_rebinds_then_lists_and_deletes(served: Served) -> None:
    first, second = served.customer(), served.customer()
    created = served.put("acme", {"stripeCustomerId": first})
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("tenantId", "customerRef", "stripeCustomerId")} == {
        "tenantId": served.tenant,
        "customerRef": "acme",
        "stripeCustomerId": first,
    }
    assert body["verifiedAt"] is not None and body["createdAt"].endswith("Z")
    assert served.put("acme", {"stripeCustomerId": first}).status_code == 200
    rebound = served.put("acme", {"tenantId": served.tenant, "stripeCustomerId": second})
    assert rebound.status_code == 200 and rebound.json()["stripeCustomerId"] == second
    listed = served.http.get(f"{served.base}/v1/customers/bindings", timeout=30).json()
    assert [(b["customerRef"], b["stripeCustomerId"]) for b in listed["bindings"]] == [
        ("acme", second)
    ]
    gone = served.http.delete(f"{served.base}/v1/customers/acme/binding", timeout=30)
    assert gone.json() == {"tenantId": served.tenant, "customerRef": "acme", "deleted": True}
    assert served.rows() == []
    # The first customer is free again once unbound, the second too.
    assert served.put("other", {"stripeCustomerId": second}).status_code == 201


def test_one_stripe_customer_per_tenant_names_the_own_customer_ref(served: Served) -> None:
    cus = served.customer()
    assert served.put("acme", {"stripeCustomerId": cus}).status_code == 201
    answer = served.put("acme-2", {"stripeCustomerId": cus})
    assert answer.status_code == 409
    assert answer.json()["error"] == {
        "code": "customer_already_bound",
        "message": f"Stripe customer {cus} is already bound to customerRef 'acme' of this"
        " tenant; delete that binding first to move it",
        "field": "stripeCustomerId",
    }
    assert served.rows() == [(served.tenant, "acme", cus, True)]


def test_a_customer_stripe_does_not_have_is_refused(served: Served) -> None:
    answer = served.put("acme", {"stripeCustomerId": "cus_doesnotexist"})
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": "unknown_stripe_customer",
        "message": "Stripe has no customer cus_doesnotexist (or it was deleted); create it in"
        " Stripe first, then bind it",
        "field": "stripeCustomerId",
    }
    deleted = served.customer()
    served.stripe.v1.customers.delete(deleted)
    assert served.put("acme", {"stripeCustomerId": deleted}).json()["error"]["code"] == (
        "unknown_stripe_customer"
    )
    assert served.rows() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stripeCustomerId": "cus_x", "tenant": "typo"}, "tenant"),
        ({"stripeCustomerId": "acct_123"}, "stripeCustomerId"),
        ({"stripeCustomerId": "cus_a\nb"}, "stripeCustomerId"),
        ({}, "stripeCustomerId"),
        ({"stripeCustomerId": "cus_x", "tenantId": "t" * 65}, "tenantId"),
    ],
    ids=["unknown-param", "not-a-customer", "newline", "missing", "bad-tenant"],
)
def test_bad_bodies_are_400_naming_the_field(
    served: Served, body: dict[str, Any], field: str
) -> None:
    answer = served.put("acme", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["field"] == field
    assert served.rows() == []


def test_lookups_the_writer_and_reconciler_use(served: Served) -> None:
    cus = served.customer()
    served.put("acme", {"stripeCustomerId": cus})
    tenant = served.tenant
    with psycopg.connect(served.db_url) as conn:
        assert stripe_customer_for(conn, tenant, "acme") == cus
        assert stripe_customer_for(conn, tenant, cus) is None  # a cus_ id is not a ref
        assert stripe_customer_for(conn, str(uuid.uuid4()), "acme") is None
        assert bound_customers(conn, tenant) == {"acme": cus}
        assert bound_customers(conn, str(uuid.uuid4())) == {}


# -- the operator's CLI ------------------------------------------------------------


def test_cli_binds_after_asking_stripe(home: Path, emulator_url: str, db_url: str) -> None:  # noqa: F811
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": emulator_url, "STRIPE_SECRET_KEY": TEST_KEY}
    cus = sdk_client(emulator_url).v1.customers.create({"email": "c@example.com"}).id
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    args = ["bindings", "put", "--tenant", tenant, "--customer-ref", "acme"]
    ok = run(home, *args, "--stripe-customer", cus, **env)
    assert ok.returncode == 0, ok.stderr
    assert f"bound customerRef 'acme' of tenant {tenant} to {cus}" in ok.stderr
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT tenant_id::text, customer_ref, stripe_customer_id, verified_at IS NOT NULL"
            " FROM customer_bindings"
        ).fetchall()
    assert rows == [(tenant, "acme", cus, True)]

    taken = run(
        home, "bindings", "put", "--tenant", other, "--customer-ref", "x", "--stripe-customer", cus,
        **env,
    )  # fmt: skip
    assert taken.returncode == 1
    assert taken.stderr.strip() == (
        f"error: Stripe customer {cus} is already bound to another tenant;"
        " a Stripe customer can be billed by one tenant only"
    )
    assert tenant not in taken.stderr

    missing = run(home, *args, "--stripe-customer", "cus_nobody", **env)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: Stripe has no customer cus_nobody")
    assert "Traceback" not in missing.stderr

    bad = run(home, *args, "--stripe-customer", "acct_1", **env)
    assert bad.returncode == 1 and "must be a Stripe customer id (cus_...)" in bad.stderr


def test_cli_api_keys_scopes(home: Path, db_url: str) -> None:  # noqa: F811
    tenant = str(uuid.uuid4())
    default = run(home, "api-keys", "create", "--tenant", tenant, DATABASE_URL=db_url)
    assert default.returncode == 0, default.stderr
    assert "with scopes ingest, read;" in default.stderr
    admin = run(
        home, "api-keys", "create", "--tenant", tenant, "--scope", "admin", "--scope", "read",
        DATABASE_URL=db_url,
    )  # fmt: skip
    assert admin.returncode == 0, admin.stderr
    with psycopg.connect(db_url) as conn:
        scopes = [r[0] for r in conn.execute("SELECT scopes FROM api_keys ORDER BY created_at")]
    assert scopes == [["ingest", "read"], ["admin", "read"]]
    wrong = run(home, "api-keys", "create", "--tenant", tenant, "--scope", "root")
    assert wrong.returncode == 2 and "invalid choice: 'root'" in wrong.stderr
