"""Tenant A, holding its own keys of every scope, cannot touch tenant B's billing.

Two tenants share one Stripe account (the emulator), each with its customers bound to
it and an active mapping (tests/support/stripe_world.py). A has one key per scope.
Every route is tried with every key: a key without the route's scope gets 403
`forbidden_scope` naming the scope, before its body is even parsed; with no key every
body-carrying route answers 401 however malformed the body.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.auth import create_api_key
from stripemeter.config import load_settings
from tests.stripemeter.conftest import event
from tests.support.databases import fresh_database
from tests.support.emulator import TEST_KEY, running_emulator, sdk_client
from tests.support.servers import serve_asgi
from tests.support.stripe_world import StripeWorld, build_world

SCOPES = ("ingest", "read", "admin")


@dataclass
class Tenancy:
    """A served API (auth on), a BYPASS_AUTH one on the same database, two worlds, A's keys."""

    base: str
    open_base: str
    db_url: str
    emulator: str
    a: StripeWorld
    b: StripeWorld
    keys: dict[str, str]  # scope -> secret of a single-scope key of tenant A

    def call(
        self, method: str, path: str, scope: str | None, base: str | None = None, **kw: Any
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.keys[scope]}"
        return requests.request(
            method, (base or self.base) + path, headers=headers, timeout=30, **kw
        )

    def scalar(self, sql: str, *params: Any) -> Any:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


@pytest.fixture(scope="module")
def tenancy(pg_server_url: str) -> Iterator[Tenancy]:
    with running_emulator() as emulator, fresh_database(pg_server_url) as db_url:
        a = build_world(emulator, db_url, customers=2)
        b = build_world(emulator, db_url, customers=2)
        keys: dict[str, str] = {}
        with psycopg.connect(db_url) as conn:
            for scope in SCOPES:
                keys[scope] = create_api_key(conn, a.tenant_id, scope, scopes=[scope]).secret
        common = {"STRIPE_API_BASE": emulator, "STRIPE_SECRET_KEY": TEST_KEY}
        app = create_app(load_settings(BYPASS_AUTH=False, **common), db_url=db_url)
        open_app = create_app(load_settings(BYPASS_AUTH=True, **common), db_url=db_url)
        with serve_asgi(app) as base, serve_asgi(open_app) as open_base:
            yield Tenancy(base, open_base, db_url, emulator, a, b, keys)


def _forbidden_scope(answer: requests.Response, needed: str, has: str) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json() == {
        "error": {
            "code": "forbidden_scope",
            "message": f"this API key lacks the {needed!r} scope this request needs (it has "
            f"{has}); use a key created with `stripemeter api-keys create --scope {needed}`",
            "field": "Authorization",
        },
        "requiredScope": needed,
    }


def _forbidden_tenant(answer: requests.Response, own: uuid.UUID, other: uuid.UUID) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json() == {
        "error": {
            "code": "forbidden_tenant",
            "message": f"this API key belongs to tenant {own} and may not access tenant {other}",
            "field": "tenantId",
        }
    }


def _bindings_of(t: Tenancy, world: StripeWorld) -> list[tuple[str, str]]:
    with psycopg.connect(t.db_url) as conn:
        rows = conn.execute(
            "SELECT customer_ref, stripe_customer_id FROM customer_bindings"
            " WHERE tenant_id = %s ORDER BY customer_ref",
            (world.tenant_id,),
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


# -- A against B -------------------------------------------------------------------


def test_a_admin_cannot_bind_bs_stripe_customer(tenancy: Tenancy) -> None:
    t = tenancy
    b_customer = t.b.customers[0]
    answer = t.call(
        "PUT",
        "/v1/customers/stolen-ref/binding",
        "admin",
        json={"tenantId": str(t.a.tenant_id), "stripeCustomerId": b_customer},
    )
    assert answer.status_code == 409, answer.text
    assert answer.json() == {
        "error": {
            "code": "customer_already_bound",
            "message": f"Stripe customer {b_customer} is already bound to another tenant;"
            " a Stripe customer can be billed by one tenant only",
            "field": "stripeCustomerId",
        }
    }
    assert str(t.b.tenant_id) not in answer.text
    assert [c for _, c in _bindings_of(t, t.a)] == sorted(t.a.customers)
    assert _bindings_of(t, t.b) == sorted((c, c) for c in t.b.customers)


def test_a_admin_cannot_bind_for_bs_tenant(tenancy: Tenancy) -> None:
    t = tenancy
    fresh = sdk_client(t.emulator).v1.customers.create({"email": "x@example.com"}).id
    answer = t.call(
        "PUT",
        "/v1/customers/new-ref/binding",
        "admin",
        json={"tenantId": str(t.b.tenant_id), "stripeCustomerId": fresh},
    )
    _forbidden_tenant(answer, t.a.tenant_id, t.b.tenant_id)
    assert (
        t.scalar("SELECT count(*) FROM customer_bindings WHERE stripe_customer_id = %s", fresh) == 0
    )


def test_a_admin_cannot_create_a_mapping_for_bs_tenant(tenancy: Tenancy) -> None:
    t = tenancy
    before = t.scalar("SELECT price_id FROM price_mappings WHERE tenant_id = %s", t.b.tenant_id)
    answer = t.call(
        "POST",
        "/v1/mappings",
        "admin",
        json={
            "tenantId": str(t.b.tenant_id),
            "metric": "api_calls",
            "aggregation": "sum",
            "priceId": t.a.price_id,
        },
    )
    _forbidden_tenant(answer, t.a.tenant_id, t.b.tenant_id)
    after = t.scalar("SELECT price_id FROM price_mappings WHERE tenant_id = %s", t.b.tenant_id)
    assert before == after == t.b.price_id


def test_a_admin_cannot_map_to_bs_subscription_item(tenancy: Tenancy) -> None:
    t = tenancy
    item = t.b.items[t.b.customers[0]]
    answer = t.call(
        "POST",
        "/v1/mappings",
        "admin",
        json={
            "tenantId": str(t.a.tenant_id),
            "metric": "stolen_calls",
            "aggregation": "sum",
            "priceId": t.b.price_id,
            "subscriptionItemId": item,
        },
    )
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": {
            "code": "subscription_item_not_bound",
            "message": f"subscription item {item} belongs to a Stripe customer that is not"
            " bound to this tenant; bind the customer first"
            " (PUT /v1/customers/{customerRef}/binding)",
            "field": "subscriptionItemId",
        }
    }
    assert t.b.customers[0] not in answer.text and str(t.b.tenant_id) not in answer.text
    assert (
        t.scalar(
            "SELECT count(*) FROM price_mappings WHERE tenant_id = %s AND metric = 'stolen_calls'",
            t.a.tenant_id,
        )
        == 0
    )


def test_a_cannot_read_bs_bindings(tenancy: Tenancy) -> None:
    t = tenancy
    answer = t.call(
        "GET", "/v1/customers/bindings", "read", params={"tenantId": str(t.b.tenant_id)}
    )
    _forbidden_tenant(answer, t.a.tenant_id, t.b.tenant_id)
    assert t.b.customers[0] not in answer.text


def test_a_reads_only_its_own_bindings(tenancy: Tenancy) -> None:
    t = tenancy
    answer = t.call("GET", "/v1/customers/bindings", "read")
    assert answer.status_code == 200
    body = answer.json()
    assert body["tenantId"] == str(t.a.tenant_id)
    assert [(b["customerRef"], b["stripeCustomerId"]) for b in body["bindings"]] == sorted(
        (c, c) for c in t.a.customers
    )


def test_a_admin_cannot_delete_bs_binding(tenancy: Tenancy) -> None:
    t = tenancy
    ref = t.b.customers[1]
    answer = t.call(
        "DELETE", f"/v1/customers/{ref}/binding", "admin", params={"tenantId": str(t.b.tenant_id)}
    )
    _forbidden_tenant(answer, t.a.tenant_id, t.b.tenant_id)
    # Without a tenantId the key's own tenant is meant: A has no such customerRef.
    own = t.call("DELETE", f"/v1/customers/{ref}/binding", "admin")
    assert own.status_code == 404
    assert own.json()["error"] == {
        "code": "not_found",
        "message": f"customerRef {ref!r} is not bound",
        "field": "customerRef",
    }
    assert _bindings_of(t, t.b) == sorted((c, c) for c in t.b.customers)


def test_a_admin_cannot_delete_bs_mapping(tenancy: Tenancy) -> None:
    t = tenancy
    mapping_id = t.scalar("SELECT id::text FROM price_mappings WHERE tenant_id = %s", t.b.tenant_id)
    answer = t.call("DELETE", f"/v1/mappings/{mapping_id}", "admin")
    _forbidden_tenant(answer, t.a.tenant_id, t.b.tenant_id)
    assert t.scalar("SELECT count(*) FROM price_mappings WHERE id = %s", mapping_id) == 1


# -- scopes ------------------------------------------------------------------------


def test_an_ingest_key_cannot_create_mappings(tenancy: Tenancy) -> None:
    t = tenancy
    answer = t.call(
        "POST",
        "/v1/mappings",
        "ingest",
        json={
            "tenantId": str(t.a.tenant_id),
            "metric": "by_ingest_key",
            "aggregation": "sum",
            "priceId": t.a.price_id,
        },
    )
    _forbidden_scope(answer, "admin", "ingest")
    assert t.scalar("SELECT count(*) FROM price_mappings WHERE metric = 'by_ingest_key'") == 0


def test_a_read_key_cannot_ingest(tenancy: Tenancy) -> None:
    t = tenancy
    batch = {"events": [event(str(t.a.tenant_id), metric="by_read_key")]}
    answer = t.call("POST", "/v1/events/ingest", "read", json=batch)
    _forbidden_scope(answer, "ingest", "read")
    assert t.scalar("SELECT count(*) FROM events WHERE metric = 'by_read_key'") == 0


def test_the_ingest_key_ingests(tenancy: Tenancy) -> None:
    t = tenancy
    batch = {"events": [event(str(t.a.tenant_id), metric="by_ingest_key", quantity=3)]}
    answer = t.call("POST", "/v1/events/ingest", "ingest", json=batch)
    assert answer.status_code == 200, answer.text
    assert t.scalar("SELECT sum(quantity) FROM events WHERE metric = 'by_ingest_key'") == 3


# (method, path, params, body, scope needed, status with the scope). Bodies are
# malformed JSON where the route takes one: a key with the scope gets the body's 400,
# a key without it 403 — the scope is checked before the body is read.
ROUTES: list[tuple[str, str, dict[str, str], str | None, str, int]] = [
    ("POST", "/v1/events/ingest", {}, "{", "ingest", 400),
    ("GET", "/v1/events", {}, None, "read", 200),
    (
        "GET",
        "/v1/usage",
        {"metric": "api_calls", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"},
        None,
        "read",
        200,
    ),
    ("GET", "/v1/mappings", {}, None, "read", 200),
    ("POST", "/v1/mappings", {}, "{", "admin", 400),
    ("DELETE", f"/v1/mappings/{uuid.UUID(int=7)}", {}, None, "admin", 404),
    ("GET", "/v1/writer/status", {}, None, "read", 200),
    ("POST", "/v1/reconciliation/run", {}, "{", "admin", 400),
    ("GET", "/v1/customers/bindings", {}, None, "read", 200),
    ("PUT", "/v1/customers/ref-1/binding", {}, "{", "admin", 400),
    ("DELETE", "/v1/customers/never-bound/binding", {}, None, "admin", 404),
]
MATRIX = [(*route, scope) for route in ROUTES for scope in SCOPES]


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "needed", "status", "scope"),
    MATRIX,
    ids=[f"{m[0]} {m[1]} with {m[6]}" for m in MATRIX],
)
def test_every_route_needs_its_scope(
    tenancy: Tenancy,
    method: str,
    path: str,
    params: dict[str, str],
    body: str | None,
    needed: str,
    status: int,
    scope: str,
) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    answer = tenancy.call(method, path, scope, params=params, data=body, headers=headers)
    if scope == needed:
        assert answer.status_code == status, answer.text
    else:
        _forbidden_scope(answer, needed, scope)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/reconciliation/summary",
        "/v1/reconciliation/2026-11",
        f"/v1/reconciliation/runs/{uuid.UUID(int=9)}",
    ],
)
def test_reconciliation_reads_need_read(tenancy: Tenancy, path: str) -> None:
    for scope in ("ingest", "admin"):
        _forbidden_scope(tenancy.call("GET", path, scope), "read", scope)
    allowed = tenancy.call("GET", path, "read", params={"periodStart": "2026-11"})
    assert allowed.status_code not in (401, 403) and allowed.status_code < 500, allowed.text


# -- authentication before the body ------------------------------------------------


def test_every_json_body_route_authenticates_before_parsing() -> None:
    """A guard for routes added later: a body parsed by FastAPI needs AuthFirstRoute."""
    from fastapi.routing import APIRoute

    from stripemeter.api.app import ROUTERS
    from stripemeter.api.deps import AuthFirstRoute

    body_routes = [
        (sorted(r.methods)[0], r.path)
        for router in ROUTERS
        for r in router.routes
        if isinstance(r, APIRoute) and r.body_field is not None
    ]
    assert sorted(body_routes) == [
        ("POST", "/v1/mappings"),
        ("POST", "/v1/reconciliation/run"),
        ("POST", "/v1/usage/projection"),
        ("PUT", "/v1/customers/{customerRef}/binding"),
    ]
    for router in ROUTERS:
        for r in router.routes:
            if isinstance(r, APIRoute) and r.body_field is not None:
                assert isinstance(r, AuthFirstRoute), r.path


BODY_ROUTES = [
    ("POST", "/v1/events/ingest"),
    ("POST", "/v1/mappings"),
    ("POST", "/v1/reconciliation/run"),
    ("POST", "/v1/usage/projection"),
    ("PUT", "/v1/customers/ref-1/binding"),
]
BAD_BODIES = {"truncated": "{", "not-json": "tenantId=x", "wrong-shape": '{"nope": [1]}'}


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=[p for _, p in BODY_ROUTES])
@pytest.mark.parametrize("bad", sorted(BAD_BODIES))
def test_no_key_and_a_malformed_body_is_401_not_400(
    tenancy: Tenancy, method: str, path: str, bad: str
) -> None:
    answer = tenancy.call(
        method, path, None, data=BAD_BODIES[bad], headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 401, answer.text
    assert answer.json() == {
        "error": {
            "code": "unauthorized",
            "message": "missing API key: send 'Authorization: Bearer <secret>' or "
            "'x-api-key: <secret>'",
            "field": "Authorization",
        }
    }


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=[p for _, p in BODY_ROUTES])
def test_an_unknown_key_and_a_malformed_body_is_401(
    tenancy: Tenancy, method: str, path: str
) -> None:
    answer = tenancy.call(
        method,
        path,
        None,
        data="{",
        headers={"Content-Type": "application/json", "Authorization": "Bearer smk_nope"},
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == {
        "code": "unauthorized",
        "message": "unknown or revoked API key",
        "field": "Authorization",
    }


# -- BYPASS_AUTH -------------------------------------------------------------------


def test_bypass_auth_allows_every_scope(tenancy: Tenancy) -> None:
    t = tenancy
    tenant = str(uuid.uuid4())
    fresh = sdk_client(t.emulator).v1.customers.create({"email": "demo@example.com"}).id
    bound = t.call(
        "PUT",
        "/v1/customers/demo-ref/binding",
        None,
        base=t.open_base,
        json={"tenantId": tenant, "stripeCustomerId": fresh},
    )
    assert bound.status_code == 201, bound.text
    mapped = t.call(
        "POST",
        "/v1/mappings",
        None,
        base=t.open_base,
        json={"tenantId": tenant, "metric": "m", "aggregation": "sum", "priceId": "price_x"},
    )
    assert mapped.status_code == 201, mapped.text
    ingested = t.call(
        "POST", "/v1/events/ingest", None, base=t.open_base, json={"events": [event(tenant)]}
    )
    assert ingested.status_code == 200, ingested.text
    listed = t.call(
        "GET", "/v1/customers/bindings", None, base=t.open_base, params={"tenantId": tenant}
    )
    assert [b["stripeCustomerId"] for b in listed.json()["bindings"]] == [fresh]
