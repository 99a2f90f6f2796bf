"""StripeMeter's `GET /v1/usage/current` and `POST /v1/usage/projection`, against the
Stripe emulator: the period is the bound customer's subscription item period as Stripe
states it, the value the local aggregate over it, the projection linear to its end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.auth import ALL_SCOPES, create_api_key
from stripemeter.config import load_settings
from stripemeter.jsonio import iso
from tests.support.databases import fresh_database
from tests.support.emulator import TEST_KEY, running_emulator
from tests.support.servers import serve_asgi
from tests.support.stripe_world import StripeWorld, build_world


@pytest.fixture(scope="module")
def served(pg_server_url: str) -> Iterator[tuple[StripeWorld, requests.Session, str]]:
    with running_emulator() as emulator, fresh_database(pg_server_url) as db_url:
        world = build_world(emulator, db_url, customers=2)
        with psycopg.connect(db_url) as conn:
            secret = create_api_key(conn, world.tenant_id, "t", scopes=ALL_SCOPES).secret
        session = requests.Session()
        session.headers["x-api-key"] = secret
        settings = load_settings(STRIPE_API_BASE=emulator, STRIPE_SECRET_KEY=TEST_KEY)
        with serve_asgi(create_app(settings, db_url=db_url)) as base:
            at = iso(datetime.fromtimestamp(world.period_start + 2 * 3600, UTC))
            events = [
                {
                    "tenantId": world.tenant_id,
                    "metric": world.metric,
                    "customerRef": world.customers[0],
                    "quantity": q,
                    "ts": at,
                    "idempotencyKey": f"k{q}",
                }
                for q in (3, 4.5)
            ]
            stored = session.post(base + "/v1/events/ingest", json={"events": events}, timeout=30)
            assert stored.status_code == 200, stored.text
            yield world, session, base
        session.close()


def _period(world: StripeWorld) -> dict[str, str]:
    return {
        "start": iso(datetime.fromtimestamp(world.period_start, UTC)),
        "end": iso(datetime.fromtimestamp(world.period_end, UTC)),
    }


def test_current_usage_is_the_period_aggregate_per_metric(
    served: tuple[StripeWorld, requests.Session, str],
) -> None:
    world, session, base = served
    customer = world.customers[0]
    answer = session.get(
        base + "/v1/usage/current",
        params={"tenantId": world.tenant_id, "customerRef": customer},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "tenantId": world.tenant_id,
        "customerRef": customer,
        "stripeCustomerId": customer,
        "metrics": [
            {
                "name": world.metric,
                "aggregation": "sum",
                "current": "7.5",
                "period": _period(world),
                "subscriptionItemId": world.items[customer],
            }
        ],
    }


def test_a_customer_without_usage_reports_zero(
    served: tuple[StripeWorld, requests.Session, str],
) -> None:
    world, session, base = served
    answer = session.get(
        base + "/v1/usage/current", params={"customerRef": world.customers[1]}, timeout=30
    )
    assert answer.status_code == 200
    assert [m["current"] for m in answer.json()["metrics"]] == ["0"]


def test_an_unbound_customer_is_404_naming_it(
    served: tuple[StripeWorld, requests.Session, str],
) -> None:
    _, session, base = served
    for answer in (
        session.get(base + "/v1/usage/current", params={"customerRef": "nobody"}, timeout=30),
        session.post(base + "/v1/usage/projection", json={"customerRef": "nobody"}, timeout=30),
    ):
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("customer_not_bound", "customerRef")
        assert "'nobody'" in error["message"]


def test_projection_extrapolates_linearly_to_the_period_end(
    served: tuple[StripeWorld, requests.Session, str],
) -> None:
    world, session, base = served
    customer = world.customers[0]
    body = {"tenantId": world.tenant_id, "customerRef": customer}
    answer = session.post(base + "/v1/usage/projection", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    now = world.frozen_time()  # the customer's test clock
    length = world.period_end - world.period_start
    elapsed = now - world.period_start
    projected = (Decimal("7.5") * length / elapsed).quantize(Decimal("0.000001"))
    fraction = (Decimal(elapsed) / length).quantize(Decimal("0.000001"))
    assert answer.json() == {
        "tenantId": world.tenant_id,
        "customerRef": customer,
        "method": "linear",
        "asOf": iso(datetime.fromtimestamp(now, UTC)),
        "metrics": [
            {
                "name": world.metric,
                "aggregation": "sum",
                "current": "7.5",
                "projected": format(projected.normalize(), "f"),
                "method": "linear",
                "period": _period(world),
                "elapsedFraction": format(fraction.normalize(), "f"),
            }
        ],
    }
    assert Decimal(answer.json()["metrics"][0]["projected"]) > Decimal("7.5")


def test_projection_body_is_validated_strictly(
    served: tuple[StripeWorld, requests.Session, str],
) -> None:
    world, session, base = served
    for body, field in (
        ({"customerRef": world.customers[0], "periodStart": "2026-01-01"}, "periodStart"),
        ({}, "customerRef"),
        ({"customerRef": ""}, "customerRef"),
    ):
        answer = session.post(base + "/v1/usage/projection", json=body, timeout=30)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["field"] == field


def test_current_usage_needs_a_key_and_the_callers_tenant(
    served: tuple[StripeWorld, requests.Session, str],
) -> None:
    world, session, base = served
    params = {"customerRef": world.customers[0]}
    assert requests.get(base + "/v1/usage/current", params=params, timeout=30).status_code == 401
    other = session.get(
        base + "/v1/usage/current", params={**params, "tenantId": "someone-else"}, timeout=30
    )
    assert other.status_code == 403
