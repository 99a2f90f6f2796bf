"""`/v1/mappings`: upsert on the active mapping, list, delete, tenant isolation, and the
Stripe check of a mapping's subscription item (against the emulator)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from stripemeter.aggregations import AGGREGATIONS
from stripemeter.auth import create_api_key
from stripemeter.mappings.meters import active_mappings
from tests.stripemeter.conftest import Api, start_api
from tests.support.emulator import TEST_KEY
from tests.support.servers import free_port
from tests.support.stripe_world import StripeWorld, build_world


def _mapping(tenant: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "tenantId": tenant,
        "metric": "api_calls",
        "aggregation": "sum",
        "stripeAccount": "default",
        "priceId": "price_A",
        "currency": "usd",
    }
    body.update(overrides)
    return body


def test_post_creates_then_replaces_the_active_mapping(api: Api) -> None:
    created = api.post("/v1/mappings", json=_mapping(api.tenant))
    replaced = api.post(
        "/v1/mappings", json=_mapping(api.tenant, priceId="price_B", aggregation="max")
    )
    assert created.status_code == 201
    assert replaced.status_code == 200
    assert replaced.json()["id"] == created.json()["id"]
    listed = api.get("/v1/mappings").json()["mappings"]
    assert [
        (m["priceId"], m["aggregation"], m["active"], m["subscriptionItemId"]) for m in listed
    ] == [("price_B", "max", True, None)]
    assert listed[0]["tenantId"] == api.tenant


def test_stripe_account_defaults_and_meter_fields_are_kept(api: Api) -> None:
    body = _mapping(api.tenant, meterId="mtr_1", meterEventName="api_calls")
    del body["stripeAccount"]
    first = api.post("/v1/mappings", json=body).json()
    assert (first["stripeAccount"], first["meterId"], first["meterEventName"]) == (
        "default",
        "mtr_1",
        "api_calls",
    )
    # Posting again without meter fields keeps the ones the writer recorded.
    again = api.post("/v1/mappings", json=_mapping(api.tenant)).json()
    assert (again["meterId"], again["meterEventName"]) == ("mtr_1", "api_calls")


def test_delete_removes_and_then_404s(api: Api) -> None:
    mapping_id = api.post("/v1/mappings", json=_mapping(api.tenant)).json()["id"]
    assert api.delete(f"/v1/mappings/{mapping_id}").json() == {"deleted": mapping_id}
    assert api.get("/v1/mappings").json() == {"mappings": []}
    missing = api.delete(f"/v1/mappings/{mapping_id}")
    assert missing.status_code == 404
    assert mapping_id in missing.json()["error"]["message"]


def test_mappings_of_another_tenant_are_out_of_reach(api: Api) -> None:
    other = str(uuid.uuid4())
    refused = api.post("/v1/mappings", json=_mapping(other))
    assert refused.status_code == 403 and other in refused.json()["error"]["message"]
    with_db = api.scalar(
        "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id)"
        " VALUES (%s, 'm', 'sum', 'price_X') RETURNING id::text",
        other,
    )
    assert api.delete(f"/v1/mappings/{with_db}").status_code == 403
    assert api.scalar("SELECT count(*) FROM price_mappings") == 1


def test_unknown_mapping_fields_are_refused(api: Api) -> None:
    answer = api.post("/v1/mappings", json=_mapping(api.tenant, priceid="typo"))
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "priceid"


def test_a_mapping_without_an_item_needs_no_stripe(api: Api) -> None:
    # The fixture's API has no Stripe configured: nothing to check, so nothing asked.
    assert api.post("/v1/mappings", json=_mapping(api.tenant)).status_code == 201


@pytest.fixture
def world_api(
    emulator_url: str, db_url: str
) -> Iterator[tuple[StripeWorld, requests.Session, str]]:
    """A world on the emulator (customers bound to its tenant) and an admin key for it."""
    world = build_world(emulator_url, db_url, customers=2)
    with psycopg.connect(db_url) as conn:
        secret = create_api_key(conn, world.tenant_id, "admin", scopes=["admin", "read"]).secret
    with start_api(db_url, STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY) as served:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {secret}"
        yield world, session, served.base
        session.close()


def _item_mapping(world: StripeWorld, item: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "metric": "item_calls",
        "priceId": world.price_id,
        "subscriptionItemId": item,
    }
    fields.update(overrides)
    return _mapping(str(world.tenant_id), **fields)


def test_own_item_on_the_mappings_price_is_accepted(
    world_api: tuple[StripeWorld, requests.Session, str],
) -> None:
    world, http, base = world_api
    item = world.items[world.customers[1]]
    answer = http.post(f"{base}/v1/mappings", json=_item_mapping(world, item), timeout=30)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["priceId"], answer.json()["subscriptionItemId"]) == (
        world.price_id,
        item,
    )


def test_item_on_another_price_is_refused_naming_both(
    world_api: tuple[StripeWorld, requests.Session, str], db_url: str
) -> None:
    world, http, base = world_api
    item = world.items[world.customers[0]]
    body = _item_mapping(world, item, priceId="price_other")
    answer = http.post(f"{base}/v1/mappings", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": {
            "code": "subscription_item_price_mismatch",
            "message": f"subscription item {item} is on price {world.price_id}, not price_other;"
            " send the item's price as priceId or the item on that price",
            "field": "subscriptionItemId",
        }
    }
    assert _item_mappings(db_url) == 0


def test_unknown_item_is_refused(world_api: tuple[StripeWorld, requests.Session, str]) -> None:
    world, http, base = world_api
    answer = http.post(f"{base}/v1/mappings", json=_item_mapping(world, "si_nope"), timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {
        "code": "unknown_subscription_item",
        "message": "Stripe has no subscription item si_nope; check subscriptionItemId or omit it",
        "field": "subscriptionItemId",
    }


def test_item_of_an_unbound_customer_is_refused(
    world_api: tuple[StripeWorld, requests.Session, str], db_url: str
) -> None:
    world, http, base = world_api
    unbound = world.customers[1]
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM customer_bindings WHERE stripe_customer_id = %s", (unbound,))
    item = world.items[unbound]
    answer = http.post(f"{base}/v1/mappings", json=_item_mapping(world, item), timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "subscription_item_not_bound"
    assert world.price_id not in answer.text and unbound not in answer.text
    assert _item_mappings(db_url) == 0


def _item_mappings(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM price_mappings WHERE metric = 'item_calls'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_stripe_unreachable_is_503_and_nothing_is_stored(api: Api, db_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_api(db_url, STRIPE_API_BASE=dead, STRIPE_SECRET_KEY=TEST_KEY) as served:
        with psycopg.connect(db_url) as conn:
            secret = create_api_key(conn, served.tenant, "a", scopes=["admin"]).secret
        body = _mapping(served.tenant, subscriptionItemId="si_x")
        answer = requests.post(
            served.url("/v1/mappings"),
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=60,
        )
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "stripe_unavailable"
    assert "nothing was changed" in answer.json()["error"]["message"]
    assert api.scalar("SELECT count(*) FROM price_mappings") == 0


def test_every_aggregation_kind_is_accepted_and_stored(api: Api) -> None:
    # The API, price_mappings and push_state all take exactly the kinds of
    # stripemeter.aggregations: a kind added there without its migration fails here.
    for n, kind in enumerate(AGGREGATIONS):
        answer = api.post(
            "/v1/mappings", json=_mapping(api.tenant, metric=f"m{n}", aggregation=kind)
        )
        assert (answer.status_code, answer.json()["aggregation"]) == (201, kind), answer.text
    with psycopg.connect(api.db_url) as conn:
        for n, kind in enumerate(AGGREGATIONS):
            conn.execute(
                "INSERT INTO push_state (tenant_id, metric, customer_ref, hour_start, event_name,"
                " stripe_customer_id, aggregation) VALUES (%s, %s, 'c', '2026-11-20T10:00Z',"
                " 'e', 'cus_1', %s)",
                (api.tenant, f"m{n}", kind),
            )
    refused = api.post("/v1/mappings", json=_mapping(api.tenant, aggregation="median"))
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "error": {
                "code": "invalid_request",
                "message": "aggregation: Input should be 'sum', 'max', 'last' or 'count'",
                "field": "aggregation",
            }
        },
    )


def test_active_false_stores_the_mapping_switched_off_and_unbilled(api: Api) -> None:
    created = api.post("/v1/mappings", json=_mapping(api.tenant, active=False))
    assert created.status_code == 201, created.text
    assert created.json()["active"] is False
    assert [m["id"] for m in api.get("/v1/mappings", params={"active": "false"}).json()[
        "mappings"
    ]] == [created.json()["id"]]  # fmt: skip
    assert api.get("/v1/mappings", params={"active": "true"}).json()["mappings"] == []
    # What the writer and the reconciler bill through: nothing for this tenant.
    with psycopg.connect(api.db_url) as conn:
        assert active_mappings(conn, api.tenant) == []


def test_active_false_then_true_switches_the_same_mapping_off_and_on(api: Api) -> None:
    on = api.post("/v1/mappings", json=_mapping(api.tenant)).json()
    off = api.post("/v1/mappings", json=_mapping(api.tenant, active=False, priceId="price_B"))
    assert off.status_code == 200
    assert (off.json()["id"], off.json()["active"], off.json()["priceId"]) == (
        on["id"],
        False,
        "price_B",
    )
    again = api.post("/v1/mappings", json=_mapping(api.tenant, priceId="price_B"))
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["active"]) == (on["id"], True)
    with psycopg.connect(api.db_url) as conn:
        billed = active_mappings(conn, api.tenant)
    assert [(str(m.id), m.price_id) for m in billed] == [(on["id"], "price_B")]
    assert len(api.get("/v1/mappings").json()["mappings"]) == 1


def test_switching_off_beside_an_older_inactive_mapping_is_409_and_changes_nothing(
    api: Api,
) -> None:
    active = api.post("/v1/mappings", json=_mapping(api.tenant)).json()
    with psycopg.connect(api.db_url) as conn:  # as an older version could leave it
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id, active)"
            " VALUES (%s, 'api_calls', 'sum', 'price_old', false)",
            (api.tenant,),
        )
    answer = api.post("/v1/mappings", json=_mapping(api.tenant, active=False))
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "conflict" and "delete the inactive one" in error["message"]
    listed = api.get("/v1/mappings").json()["mappings"]
    assert [(m["priceId"], m["active"]) for m in listed] == [
        ("price_A", True),
        ("price_old", False),
    ]
    assert listed[0]["id"] == active["id"]


def test_active_must_be_a_boolean(api: Api) -> None:
    answer = api.post("/v1/mappings", json=_mapping(api.tenant, active="maybe"))
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "active"
