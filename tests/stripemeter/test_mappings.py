"""`/v1/mappings`: upsert on the active mapping, list, delete, tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

from tests.stripemeter.conftest import Api


def _mapping(tenant: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "tenantId": tenant,
        "metric": "api_calls",
        "aggregation": "sum",
        "stripeAccount": "default",
        "priceId": "price_A",
        "subscriptionItemId": "si_A",
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
    ] == [("price_B", "max", True, "si_A")]
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
