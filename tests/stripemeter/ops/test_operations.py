"""Health, readiness (with extra checks), Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import psycopg
import requests

from stripemeter.api.app import create_app
from stripemeter.config import load_settings
from tests.stripemeter.conftest import Api, event, start_api
from tests.support.servers import free_port, serve_asgi


def test_live_and_ready_when_the_database_answers(api: Api, emulator_url: str) -> None:
    assert requests.get(api.url("/health/live"), timeout=10).json() == {"status": "ok"}
    with start_api(api.db_url, STRIPE_API_BASE=emulator_url) as served:
        ready = requests.get(served.url("/health/ready"), timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "healthy",
        "reasons": [],
        "stripe": {"mode": "emulator"},
        "checks": {
            "database": {"status": "ok", "detail": "SELECT 1 answered"},
            "stripe_writer": {"status": "ok", "detail": "no recent Stripe failures"},
            "stripe": {"status": "ok", "detail": f"Stripe at {emulator_url} answers"},
        },
    }


def test_ready_and_metrics_state_the_stripe_mode(db_url: str) -> None:
    # A local base: the readiness probe must not reach Stripe itself from a test.
    local = f"http://127.0.0.1:{free_port()}"
    for key, mode in (("sk_test_mode1234", "test"), ("sk_live_mode1234", "refused")):
        with start_api(db_url, STRIPE_SECRET_KEY=key, STRIPE_API_BASE=local) as served:
            ready = requests.get(served.url("/health/ready"), timeout=10).json()
            metrics = requests.get(served.url("/metrics"), timeout=10).text
        assert ready["stripe"] == {"mode": mode}
        shown = [
            line for line in metrics.splitlines() if line.startswith("stripemeter_stripe_mode")
        ]
        assert sorted(shown) == sorted(
            f'stripemeter_stripe_mode{{mode="{m}"}} {1.0 if m == mode else 0.0}'
            for m in ("live", "test", "emulator", "refused")
        )


def test_ready_is_503_when_the_database_is_unreachable() -> None:
    nowhere = f"host=127.0.0.1 port={free_port()} dbname=x user=x connect_timeout=1"
    app = create_app(load_settings(BYPASS_AUTH=True), db_url=nowhere)
    with serve_asgi(app) as base:
        ready = requests.get(base + "/health/ready", timeout=30)
        ingest = requests.post(
            base + "/v1/events/ingest",
            json={"events": [event("00000000-0000-4000-8000-000000000001")]},
            timeout=30,
        )
        live = requests.get(base + "/health/live", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["status"] == "unhealthy"
    assert ready.json()["checks"]["database"]["status"] == "unhealthy"
    assert ingest.status_code == 503
    assert ingest.json()["error"]["code"] == "database_unavailable"
    assert live.status_code == 200


def test_extra_health_checks_set_the_overall_status(db_url: str) -> None:
    app = create_app(load_settings(BYPASS_AUTH=True), db_url=db_url)
    app.state.extra_health_checks.append(lambda: ("writer", "degraded", "3 buckets behind"))
    with serve_asgi(app) as base:
        degraded = requests.get(base + "/health/ready", timeout=10)
        app.state.extra_health_checks.append(lambda: ("reconciler", "unhealthy", "stuck"))
        unhealthy = requests.get(base + "/health/ready", timeout=10)

        def broken() -> tuple[str, str, str]:
            raise RuntimeError("boom")

        app.state.extra_health_checks[:] = [broken]
        failing = requests.get(base + "/health/ready", timeout=10)
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"]["writer"] == {
        "status": "degraded",
        "detail": "3 buckets behind",
    }
    assert unhealthy.status_code == 503 and unhealthy.json()["status"] == "unhealthy"
    assert failing.status_code == 503
    assert failing.json()["checks"]["broken"]["detail"] == "check failed: boom"


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{wanted}}} not exposed")


def test_metrics_count_requests_latency_and_events_per_outcome(api: Api) -> None:
    before = requests.get(api.url("/metrics"), timeout=10).text

    def value(text: str, name: str, **labels: str) -> float:
        try:
            return _sample(text, name, **labels)
        except AssertionError:
            return 0.0

    batch = {
        "events": [
            event(api.tenant, metric="metrics_test", idempotencyKey="a"),
            event(api.tenant, metric="metrics_test", idempotencyKey="a"),
            event(api.tenant, metric="metrics_test", quantity=-1),
        ]
    }
    assert api.post("/v1/events/ingest", json=batch).status_code == 200
    after = requests.get(api.url("/metrics"), timeout=10).text
    events = "stripemeter_ingest_events_total"
    for outcome in ("accepted", "duplicate", "rejected"):
        change = value(after, events, outcome=outcome) - value(before, events, outcome=outcome)
        assert change == 1, outcome
    # Metric names are client text: never a label value (issue 9, item 6).
    assert "metrics_test" not in after and "metric=" not in after
    route = {"method": "POST", "route": "/v1/events/ingest"}
    assert value(after, "stripemeter_http_requests_total", status="200", **route) >= 1
    assert value(after, "stripemeter_http_request_duration_seconds_count", **route) >= 1


def test_openapi_lists_every_route(api: Api) -> None:
    paths = requests.get(api.url("/openapi.json"), timeout=10).json()["paths"]
    for path in (
        "/v1/events/ingest",
        "/v1/events",
        "/v1/usage",
        "/v1/mappings",
        "/v1/mappings/{mapping_id}",
        "/health/live",
        "/health/ready",
        "/metrics",
    ):
        assert path in paths
    ingest_body = paths["/v1/events/ingest"]["post"]["requestBody"]
    assert "events" in ingest_body["content"]["application/json"]["schema"]["properties"]


def test_seed_upsert_runs_verbatim_twice_and_the_api_lists_it(api: Api) -> None:
    from tests.stripemeter.db.test_migrations import SEED_UPSERT

    with psycopg.connect(api.db_url) as conn:
        conn.execute(SEED_UPSERT.format(tenant=api.tenant, price="price_A", item="si_A"))
        conn.execute(SEED_UPSERT.format(tenant=api.tenant, price="price_B", item="si_B"))
    listed = api.get("/v1/mappings").json()["mappings"]
    assert [(m["priceId"], m["subscriptionItemId"], m["currency"]) for m in listed] == [
        ("price_B", "si_B", "USD")
    ]
