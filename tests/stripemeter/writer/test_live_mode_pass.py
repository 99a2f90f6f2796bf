"""The writer in live mode, against a stand-in that answers live keys like Stripe:
a pass pushes with the live key; a restricted key lacking the meter-event permission
gets one line naming it, no retries, and the usage stays pending until it is granted."""

from __future__ import annotations

import psycopg

from stripemeter.config import Settings, load_settings
from stripemeter.stripe.client import gateway_from_settings
from stripemeter.writer.passes import push_pending
from stripemeter.writer.pending import PENDING_SQL
from tests.support.live_standin import running_live_standin
from tests.support.stripe_world import HOUR, build_world, ingest, running_api, usage_event

METER_EVENTS = ("POST", "/v1/billing/meter_events")
PERMISSION = "rak_billing_meter_event_write"


def live_settings(base: str, db_url: str, key: str) -> Settings:
    return load_settings(
        environ={},
        DATABASE_URL=db_url,
        STRIPE_API_BASE=base,
        STRIPE_SECRET_KEY=key,
        STRIPEMETER_LIVE=True,
        BYPASS_AUTH=True,
    )


def statuses(db_url: str) -> list[str]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT status FROM meter_pushes ORDER BY seq").fetchall()
    return [row[0] for row in rows]


def test_a_live_writer_pass_pushes_with_the_live_key(db_url: str) -> None:
    with running_live_standin() as (base, standin):
        world = build_world(base, db_url, customers=2)
        settings = live_settings(base, db_url, "sk_live_writerpass0001")
        hour = world.frozen_time() - 2 * HOUR
        hour -= hour % HOUR
        events = [usage_event(world, c, hour + 60, 7, f"e-{c}") for c in world.customers]
        with running_api(settings, db_url) as api:
            assert ingest(api, events) == (2, 0)
        result = push_pending(psycopg.connect(db_url), gateway_from_settings(settings), settings)
        assert (result.events_sent, result.errors) == (2, [])
        sent = [r for r in standin.requests if (r[0], r[1]) == METER_EVENTS]
        assert [prefix for _, _, prefix in sent] == ["sk_live_", "sk_live_"]
        assert statuses(db_url) == ["sent", "sent"]


def test_a_restricted_key_without_the_permission_leaves_usage_pending_until_granted(
    db_url: str,
) -> None:
    with running_live_standin({METER_EVENTS: PERMISSION}) as (base, standin):
        world = build_world(base, db_url, customers=1)
        (customer,) = world.customers
        settings = live_settings(base, db_url, "rk_live_restricted0042")
        hour = world.frozen_time() - 2 * HOUR
        hour -= hour % HOUR
        with running_api(settings, db_url) as api:
            ingest(api, [usage_event(world, customer, hour + 60, 5, "r-1")])
        gateway = gateway_from_settings(settings)
        with psycopg.connect(db_url) as conn:
            refused = push_pending(conn, gateway, settings)
        assert refused.events_sent == 0
        assert standin.calls(*METER_EVENTS) == 1  # refused once, not retried
        (error,) = refused.errors
        assert f"the Stripe key lacks the '{PERMISSION}' permission (403)" in error
        assert f"for {customer}" in error and "\n" not in error
        assert statuses(db_url) == ["pending"]

        standin.withheld.clear()  # the operator grants the permission
        with psycopg.connect(db_url) as conn:
            granted = push_pending(conn, gateway, settings)
        assert (granted.events_sent, granted.errors) == (1, [])
        assert statuses(db_url) == ["sent"]
        assert world.stripe_total(customer, hour, hour + HOUR) == 5


def test_a_revoked_key_leaves_usage_pending_instead_of_quarantining_it(db_url: str) -> None:
    with running_live_standin() as (base, standin):
        world = build_world(base, db_url, customers=1)
        (customer,) = world.customers
        settings = live_settings(base, db_url, "sk_live_revokedlater77")
        hour = world.frozen_time() - 2 * HOUR
        hour -= hour % HOUR
        gateway = gateway_from_settings(settings)
        with running_api(settings, db_url) as api:
            ingest(api, [usage_event(world, customer, hour + 60, 2, "v-1")])
            with psycopg.connect(db_url) as conn:
                assert push_pending(conn, gateway, settings).events_sent == 1
            ingest(api, [usage_event(world, customer, hour + 3 * 60, 4, "v-2")])
        standin.revoked = True
        with psycopg.connect(db_url) as conn:
            refused = push_pending(conn, gateway, settings)
        (error,) = refused.errors
        assert "AuthenticationError (401): Invalid API Key provided: sk_live_" in error
        assert "sk_live_revokedlater77" not in error
        assert "quarantined" not in statuses(db_url)  # pending: in the outbox or the buckets
        with psycopg.connect(db_url) as conn:
            waiting = conn.execute(PENDING_SQL, {"t": world.tenant_id}).fetchone()
        assert waiting is not None and waiting[2] == 4

        standin.revoked = False  # a valid key again
        with psycopg.connect(db_url) as conn:
            assert push_pending(conn, gateway, settings).errors == []
        assert statuses(db_url) == ["sent", "sent"]
        assert world.stripe_total(customer, hour, hour + HOUR) == 6
