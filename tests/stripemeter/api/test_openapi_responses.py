"""Every route's real answers match what /openapi.json says they are.

The API is served on 127.0.0.1 with authentication on, on a real PostgreSQL database,
with the Stripe emulator as Stripe (a meter, a price, two customers with subscriptions,
bound to the tenant: tests/support/stripe_world.py). Each route is driven with
realistic requests, at least one answered with success and one with an error, and each
answer is checked against the document the app serves: its status must be documented
for the operation (explicitly, not only through a `4XX` range), its media type must be
one the status documents, and its body must validate against the schema (schemathesis'
response conformance: types, formats, patterns, required fields, no undocumented
field). A body that drifts from its model fails here. The last test checks that every
operation of the document was driven with both kinds of answer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import psycopg
import pytest
import requests
import schemathesis
from prometheus_client import CONTENT_TYPE_LATEST
from schemathesis.core.failures import Failure, FailureGroup

from stripemeter.api.app import create_app
from stripemeter.auth import ALL_SCOPES, create_api_key
from stripemeter.config import load_settings
from stripemeter.ingest.validation import METRIC_PATTERN, METRIC_TEXT
from tests.stripemeter.webhooks.signing import signature
from tests.support.databases import fresh_database
from tests.support.emulator import TEST_KEY, running_emulator
from tests.support.servers import serve_asgi
from tests.support.stripe_world import StripeWorld, build_world

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
OTHER_TENANT = "00000000-0000-4000-8000-00000000000b"
WHSEC = "whsec_conformance"


@dataclass
class Served:
    """The served API and its document, the world's tenant keys, what was checked."""

    base: str
    document: dict[str, Any]
    schema: schemathesis.BaseSchema
    world: StripeWorld
    keys: dict[str, str]  # "admin" (every scope), "read" (read only), "other" (a 2nd tenant)
    other_tenant: uuid.UUID
    seen: dict[str, set[int]] = field(default_factory=dict)  # "METHOD /template" -> statuses
    db_url: str = ""

    @property
    def tenant(self) -> str:
        return str(self.world.tenant_id)

    def call(
        self,
        method: str,
        template: str,
        status: int,
        *,
        key: str | None = "admin",
        path: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request to the route `template`, assert its status, check it conforms."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        url = self.base + template.format(**(path or {}))
        answer = requests.request(method, url, headers=headers, timeout=60, **kwargs)
        assert answer.status_code == status, (method, url, answer.status_code, answer.text)
        assert_conforms(self, method, template, answer)
        self.seen.setdefault(f"{method.upper()} {template}", set()).add(status)
        return answer


def assert_conforms(served: Served, method: str, template: str, answer: requests.Response) -> None:
    """The answer's status, media type and body are those the document gives the route."""
    responses = served.document["paths"][template][method.lower()]["responses"]
    status = str(answer.status_code)
    assert status in responses, f"{method} {template}: status {status} is not documented"
    media_type = answer.headers["content-type"].split(";", 1)[0].strip()
    documented = responses[status].get("content", {})
    assert media_type in documented, (
        f"{method} {template} {status}: {media_type} is not among {sorted(documented)}"
    )
    operation = served.schema[template][method.upper()]
    try:
        operation.validate_response(answer)
    except FailureGroup as exc:
        problems = "\n".join(str(failure) for failure in exc.exceptions)
    except Failure as exc:
        problems = str(exc)
    else:
        return
    pytest.fail(f"{method} {template} {status} does not match its schema:\n{problems}")


@pytest.fixture(scope="module")
def served(pg_server_url: str) -> Iterator[Served]:
    with running_emulator() as emulator, fresh_database(pg_server_url) as db_url:
        world = build_world(emulator, db_url, customers=2)
        other_tenant = str(uuid.uuid4())
        with psycopg.connect(db_url) as conn:
            keys = {
                "admin": create_api_key(conn, world.tenant_id, "admin", scopes=ALL_SCOPES).secret,
                "read": create_api_key(conn, world.tenant_id, "reader", scopes=["read"]).secret,
                "other": create_api_key(conn, other_tenant, "other", scopes=ALL_SCOPES).secret,
            }
        settings = load_settings(
            STRIPE_API_BASE=emulator, STRIPE_SECRET_KEY=TEST_KEY, STRIPE_WEBHOOK_SECRET=WHSEC
        )
        with serve_asgi(create_app(settings, db_url=db_url)) as base:
            document = requests.get(base + "/openapi.json", timeout=30).json()
            schema = schemathesis.openapi.from_dict(document)
            yield Served(base, document, schema, world, keys, other_tenant, db_url=db_url)


def _events(served: Served, count: int, **overrides: Any) -> list[dict[str, Any]]:
    hour_ago = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 3600))
    return [
        {
            "tenantId": served.tenant,
            "metric": served.world.metric,
            "customerRef": served.world.customers[n % 2],
            "quantity": 2.5,
            "ts": hour_ago,
            "idempotencyKey": f"conformance-{n}",
            "meta": {"region": "eu", "n": n},
            **overrides,
        }
        for n in range(count)
    ]


# --- the document itself ----------------------------------------------------------------


def test_no_json_success_is_documented_as_a_bare_string(served: Served) -> None:
    bare = []
    for path, operations in served.document["paths"].items():
        for method, spec in operations.items():
            for status, response in spec["responses"].items():
                if not status.startswith("2"):
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None and ("$ref" not in schema or schema == {"type": "string"}):
                    bare.append(f"{method.upper()} {path} {status}: {schema}")
    assert bare == []
    # Only the CSV summary and the Prometheus text are not JSON.
    text = {
        f"{method.upper()} {path}": sorted(
            set(spec["responses"]["200"]["content"]) - {"application/json"}
        )
        for path, operations in served.document["paths"].items()
        for method, spec in operations.items()
        if set(spec["responses"].get("200", {}).get("content", {})) - {"application/json"}
    }
    assert text == {
        "GET /v1/reconciliation/summary": ["text/csv"],
        "GET /metrics": ["text/plain"],
    }


def test_every_error_is_documented_as_the_one_error_body(served: Served) -> None:
    not_error_body = []
    for path, operations in served.document["paths"].items():
        for method, spec in operations.items():
            for status, response in spec["responses"].items():
                if status.startswith("2") or (path, status) == ("/health/ready", "503"):
                    continue
                schema = response["content"]["application/json"]["schema"]
                if schema != {"$ref": "#/components/schemas/ErrorBody"}:
                    not_error_body.append(f"{method.upper()} {path} {status}: {schema}")
    assert not_error_body == []
    # FastAPI's own 422 body is not what this API answers (its validation errors are 400).
    assert "HTTPValidationError" not in served.document["components"]["schemas"]


def _metric_patterns(node: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Where (keys from the root) each `metric` field or parameter with a pattern is, and
    the pattern, as the last element."""
    if isinstance(node, dict):
        metric = node.get("schema", {}) if node.get("name") == "metric" else {}
        if not metric and isinstance(node.get("properties"), dict):
            metric = node["properties"].get("metric", {})
        for schema in [metric, *metric.get("anyOf", [])]:
            if "pattern" in schema:
                yield (*where, schema["pattern"])
        for key, value in node.items():
            yield from _metric_patterns(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _metric_patterns(value, (*where, str(index)))


def test_every_metric_in_the_document_follows_the_one_metric_rule(served: Served) -> None:
    found = list(_metric_patterns(served.document))
    assert {pattern for *_, pattern in found} == {METRIC_PATTERN}
    # The ingest body, the two query parameters, and the mapping body.
    assert {where[:2] for where in found} == {
        ("paths", "/v1/events/ingest"),
        ("paths", "/v1/events"),
        ("paths", "/v1/usage"),
        ("components", "schemas"),
    }
    assert ("components", "schemas", "MappingIn", METRIC_PATTERN) in found
    # The document's pattern (an ECMA-262 engine) and the ingest check agree on every case,
    # a trailing newline included.
    ecma = jsonschema_rs.validator_for({"type": "string", "pattern": METRIC_PATTERN})
    for text in ("api_calls", "a.b:c-d", "m" * 128, "m" * 129, "", "api calls", "calls\n"):
        assert ecma.is_valid(text) == bool(METRIC_TEXT.fullmatch(text)), repr(text)


# --- events and usage -------------------------------------------------------------------


def test_ingest_answers_conform(served: Served) -> None:
    route = "/v1/events/ingest"
    batch = [*_events(served, 3), {"tenantId": served.tenant, "metric": "bad metric"}]
    body = served.call("POST", route, 200, json={"events": batch}).json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert body["results"][3]["status"] == "error"
    assert body["errors"][0]["index"] == 3
    again = served.call("POST", route, 200, json={"events": _events(served, 1)}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)

    all_bad = served.call("POST", route, 400, json={"events": [{"metric": 5}, {}]}).json()
    assert [e["index"] for e in all_bad["errors"]] == [0, 1]
    served.call("POST", route, 400, data=b"{", headers={"Content-Type": "application/json"})
    served.call("POST", route, 401, key=None, json={"events": _events(served, 1)})
    scope = served.call("POST", route, 403, key="read", json={"events": _events(served, 1)})
    assert scope.json()["requiredScope"] == "ingest"
    served.call("POST", route, 403, json={"events": _events(served, 1, tenantId=OTHER_TENANT)})
    keyed = {"Idempotency-Key": "conformance-request"}
    served.call("POST", route, 200, json={"events": _events(served, 1)}, headers=keyed)
    served.call("POST", route, 409, json={"events": _events(served, 2)}, headers=keyed)
    served.call("POST", route, 415, data=b"events", headers={"Content-Type": "text/plain"})
    served.call("POST", route, 413, data=b" " * (1024 * 1024 + 1))


def test_event_listing_answers_conform(served: Served) -> None:
    route = "/v1/events"
    first = served.call("GET", route, 200, params={"limit": 2}).json()
    assert len(first["events"]) == 2 and first["nextCursor"] is not None
    assert first["events"][0]["quantity"] == "2.5"
    rest = served.call("GET", route, 200, params={"cursor": first["nextCursor"]}).json()
    assert rest["nextCursor"] is None
    served.call("GET", route, 400, params={"cursor": "not-ours"})
    served.call("GET", route, 400, params={"metric": "bad metric"})
    served.call("GET", route, 401, key=None)
    served.call("GET", route, 403, params={"tenantId": OTHER_TENANT})


def test_usage_answers_conform(served: Served) -> None:
    route = "/v1/usage"
    now = time.time()
    window = {
        "metric": served.world.metric,
        "from": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now - 5 * 3600)),
        "to": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now + 3600)),
    }
    one = {**window, "customerRef": served.world.customers[0]}
    assert served.call("GET", route, 200, params=one).json()["customerRef"] == one["customerRef"]
    every = served.call("GET", route, 200, params=window).json()
    assert every["customerRef"] is None and every["events"] > 0
    nothing = served.call("GET", route, 200, params={**window, "metric": "unused"}).json()
    assert (nothing["total"], nothing["max"], nothing["last"]) == ("0", None, None)
    served.call("GET", route, 400, params={**window, "from": "2026-11-20T10:30:00Z"})
    served.call("GET", route, 400, params={"metric": served.world.metric})
    served.call("GET", route, 401, key=None, params=window)
    served.call("GET", route, 403, key="other", params={**window, "tenantId": served.tenant})


def test_current_usage_and_projection_answers_conform(served: Served) -> None:
    customer = {"customerRef": served.world.customers[0]}
    metrics = served.call("GET", "/v1/usage/current", 200, params=customer).json()["metrics"]
    assert [m["name"] for m in metrics] == [served.world.metric]
    served.call("GET", "/v1/usage/current", 404, params={"customerRef": "nobody"})
    served.call("GET", "/v1/usage/current", 400, params={})
    served.call("GET", "/v1/usage/current", 401, key=None, params=customer)
    projection = served.call("POST", "/v1/usage/projection", 200, json=customer).json()
    assert projection["method"] == "linear"
    served.call("POST", "/v1/usage/projection", 404, json={"customerRef": "nobody"})
    served.call("POST", "/v1/usage/projection", 400, json={**customer, "periodEnd": "x"})
    served.call("POST", "/v1/usage/projection", 401, key=None, json=customer)


# --- mappings and bindings --------------------------------------------------------------


def test_mapping_answers_conform(served: Served) -> None:
    route = "/v1/mappings"
    listed = served.call("GET", route, 200).json()["mappings"]
    assert [m["metric"] for m in listed] == [served.world.metric]
    served.call("GET", route, 400, params={"tenantId": "acme\tcorp"})
    served.call("GET", route, 401, key=None)

    item = served.world.items[served.world.customers[0]]
    mapping = {
        "tenantId": served.tenant,
        "metric": "storage_gb",
        "aggregation": "max",
        "priceId": served.world.price_id,
        "subscriptionItemId": item,
    }
    created = served.call("POST", route, 201, json=mapping).json()
    assert created["subscriptionItemId"] == item and created["meterId"] is None
    served.call("POST", route, 200, json={**mapping, "aggregation": "last"})
    refused = served.call("POST", route, 400, json={**mapping, "subscriptionItemId": "si_nope"})
    assert refused.json()["error"]["code"] == "unknown_subscription_item"
    served.call("POST", route, 400, json={**mapping, "colour": "red"})
    served.call("POST", route, 403, key="read", json=mapping)

    one = "/v1/mappings/{mapping_id}"
    deleted = served.call("DELETE", one, 200, path={"mapping_id": created["id"]}).json()
    assert deleted == {"deleted": created["id"]}
    served.call("DELETE", one, 404, path={"mapping_id": created["id"]})
    served.call("DELETE", one, 400, path={"mapping_id": "nope"})


def test_binding_answers_conform(served: Served) -> None:
    one = "/v1/customers/{customerRef}/binding"
    customer = served.world.client.v1.customers.create({"email": "late@example.com"}).id
    ref = {"customerRef": "late-customer"}
    created = served.call("PUT", one, 201, path=ref, json={"stripeCustomerId": customer}).json()
    assert created["verifiedAt"] is not None
    served.call("PUT", one, 200, path=ref, json={"stripeCustomerId": customer})
    served.call(
        "PUT", one, 409, path={"customerRef": "second-ref"}, json={"stripeCustomerId": customer}
    )
    served.call("PUT", one, 400, path=ref, json={"stripeCustomerId": "cus_nobody"})
    served.call("PUT", one, 403, key="read", path=ref, json={"stripeCustomerId": customer})

    listed = served.call("GET", "/v1/customers/bindings", 200).json()
    assert "late-customer" in [b["customerRef"] for b in listed["bindings"]]
    served.call(
        "GET", "/v1/customers/bindings", 403, key="other", params={"tenantId": served.tenant}
    )

    served.call("DELETE", one, 200, path=ref)
    served.call("DELETE", one, 404, path=ref)
    served.call("DELETE", one, 401, key=None, path=ref)


def test_writer_status_answers_conform(served: Served) -> None:
    route = "/v1/writer/status"
    status = served.call("GET", route, 200).json()
    assert status["pendingBuckets"] > 0 and status["lastPushAt"] is None
    served.call("GET", route, 400, params={"tenantId": "acme\tcorp"})
    served.call("GET", route, 401, key=None)


# --- reconciliation ---------------------------------------------------------------------


def test_reconciliation_answers_conform(served: Served) -> None:
    run_route = "/v1/reconciliation/run"
    tenant = {"tenantId": served.tenant}
    done = served.call("POST", run_route, 200, params={"wait": "true"}, json=tenant).json()
    assert done["status"] == "done" and done["reports"], done
    assert {r["status"] for r in done["reports"]} == {"investigate"}  # nothing pushed yet
    queued = served.call("POST", run_route, 202, json=tenant).json()
    assert queued["coalesced"] is False and queued["status"] in ("queued", "running", "done")
    served.call("POST", run_route, 400, json={})
    served.call("POST", run_route, 403, json={"tenantId": OTHER_TENANT})

    # A tenant whose mapping names a price Stripe does not have: Stripe refuses the run.
    refused_mapping = {
        "tenantId": str(served.other_tenant),
        "metric": "api_calls",
        "aggregation": "sum",
        "priceId": "price_missing",
    }
    served.call("POST", "/v1/mappings", 201, key="other", json=refused_mapping)
    refused = served.call(
        "POST",
        run_route,
        422,
        key="other",
        params={"wait": "true"},
        json={"tenantId": str(served.other_tenant)},
    ).json()
    assert refused["error"]["code"] == "stripe_refused" and refused["runId"]

    run = "/v1/reconciliation/runs/{runId}"
    again = served.call("GET", run, 200, path={"runId": done["runId"]}).json()
    assert again["reports"] == done["reports"]
    served.call("GET", run, 404, path={"runId": str(uuid.uuid4())})
    served.call("GET", run, 400, path={"runId": "nope"})

    summary = "/v1/reconciliation/summary"
    period_month = done["reports"][0]["periodStart"][:7]  # YYYY-MM
    months = {"periodStart": period_month, "periodEnd": period_month}
    body = served.call("GET", summary, 200, params=months).json()
    assert body["overall"]["items"] == len(done["reports"])
    csv = served.call("GET", summary, 200, params={**months, "format": "csv"})
    assert csv.text.splitlines()[0] == "metric,local,stripe,drift_abs,drift_pct,items"
    served.call("GET", summary, 404, params={"periodStart": "2001-01", "periodEnd": "2001-02"})
    served.call("GET", summary, 400, params={**months, "from": "2026-01-01T00:00:00Z"})

    month = "/v1/reconciliation/{month}"
    listed = served.call("GET", month, 200, path={"month": period_month}).json()
    assert len(listed["reports"]) == len(done["reports"])
    served.call("GET", month, 400, path={"month": "2026-13"})


# --- corrections after close ------------------------------------------------------------


def test_correction_answers_conform(served: Served) -> None:
    listing = "/v1/corrections"
    assert served.call("GET", listing, 200, params={"status": "proposed"}).json() == {"data": []}
    served.call("GET", listing, 400, params={"status": "done"})
    served.call("GET", listing, 403, params={"tenantId": OTHER_TENANT})
    served.call("GET", listing, 401, key="sk_unknown")
    # An applied correction: applying it again answers it unchanged, without Stripe.
    with psycopg.connect(served.db_url) as conn:
        row = conn.execute(
            "INSERT INTO corrections (tenant_id, metric, customer_ref, stripe_customer_id,"
            " subscription_id, subscription_item_id, price_id, period_start, period_end,"
            " invoice_id, kind, quantity, amount, currency, description, ledger_quantity,"
            " billed_quantity, status, stripe_object_id, applied_at) VALUES (%s, 'api_calls',"
            " 'c', 'cus_x', 'sub_x', 'si_x', 'price_x', now() - interval '31 days',"
            " now() - interval '1 day', 'in_x', 'invoice_item', 5, 25, 'usd', 'd', 430, 425,"
            " 'applied', 'ii_conformance', now()) RETURNING id",
            (served.tenant,),
        ).fetchone()
    assert row is not None
    apply = "/v1/corrections/{correctionId}/apply"
    correction = {"correctionId": str(row[0])}
    applied = served.call("POST", apply, 200, path=correction).json()
    assert (applied["status"], applied["stripeObjectId"]) == ("applied", "ii_conformance")
    assert served.call("POST", apply, 200, path=correction, params={"dryRun": "true"}).json() == (
        applied
    )
    assert served.call("GET", listing, 200).json() == {"data": [applied]}
    served.call("POST", apply, 404, path={"correctionId": str(uuid.uuid4())})
    served.call("POST", apply, 404, key="other", path=correction)
    served.call("POST", apply, 403, key="read", path=correction)
    served.call("POST", apply, 400, path={"correctionId": "nope"})


# --- operations -------------------------------------------------------------------------


def test_stripe_webhook_answers_conform(served: Served) -> None:
    route = "/v1/stripe/webhooks"
    body = json.dumps({"id": "evt_conformance", "type": "customer.updated", "data": {}}).encode()
    headers = {"Stripe-Signature": signature(WHSEC, body), "Content-Type": "application/json"}
    answer = served.call("POST", route, 200, key=None, data=body, headers=headers).json()
    assert (answer["status"], answer["duplicate"]) == ("ignored", False)
    served.call("POST", route, 400, key=None, data=body, headers={"Stripe-Signature": "t=1,v1=0"})
    errors = "/v1/stripe/meter_errors"
    assert served.call("GET", errors, 200).json() == {"tenantId": served.tenant, "errors": []}
    served.call("GET", errors, 403, params={"tenantId": OTHER_TENANT})
    served.call("GET", errors, 400, params={"limit": "many"})
    served.call("GET", errors, 401, key=None)
    served.call("GET", errors, 403, key="read")


def test_health_and_metrics_answers_conform(served: Served) -> None:
    assert served.call("GET", "/health/live", 200, key=None).json() == {"status": "ok"}
    served.call("GET", "/health/live", 400, key=None, params={"verbose": "1"})
    assert served.call("GET", "/health", 200, key=None).json()["status"] == "ok"
    served.call("GET", "/health", 400, key=None, params={"verbose": "1"})
    public = served.call("GET", "/health/ready", 200, key=None).json()
    assert set(public["checks"]) == {"database", "stripe_writer", "stripe"}
    served.call("GET", "/health/ready", 200)  # an admin key: tenant detail
    served.call("GET", "/health/ready", 401, key="sk_unknown")
    served.call("GET", "/health/ready", 403, key="read")

    metrics = served.call("GET", "/metrics", 200, key=None)
    assert metrics.headers["content-type"] == CONTENT_TYPE_LATEST
    served.call("GET", "/metrics", 401, key="sk_unknown")
    served.call("GET", "/metrics", 403, key="read")


def test_every_operation_was_checked_with_a_success_and_an_error(served: Served) -> None:
    # Runs last in the module, after the tests above have driven every route.
    operations = {
        f"{method.upper()} {path}"
        for path, spec in served.document["paths"].items()
        for method in spec
        if method in HTTP_METHODS
    }
    assert set(served.seen) == operations
    missing = {
        name: sorted(statuses)
        for name, statuses in served.seen.items()
        if not (any(s < 300 for s in statuses) and any(s >= 400 for s in statuses))
    }
    assert missing == {}
