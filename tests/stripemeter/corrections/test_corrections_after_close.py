"""Corrections after close, end to end: real PostgreSQL, the real API and CLI, the
emulator as Stripe. A final invoice that billed other than the ledger gets exactly one
correction in Stripe, however often (and however unluckily) it is applied."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import requests

from stripemeter.auth import create_api_key
from stripemeter.config import load_settings
from tests.stripemeter.corrections.closed import UNIT, Closed, closed_period
from tests.stripemeter.test_cli import home, run
from tests.support.emulator import TEST_KEY
from tests.support.stripe_world import HOUR, build_world, fault, running_api

__all__ = ["home"]  # the fixture, shared with test_cli
NOT_FOUND = "correction_not_found"


def _cycle_invoice(closed: Closed) -> Any:
    invoices = closed.world.client.v1.invoices.list({"customer": closed.customer}).data
    return next(i for i in invoices if i.billing_reason == "subscription_cycle")


def test_under_billing_becomes_one_invoice_item_on_the_next_invoice(
    emulator_url: str, db_url: str, home: Path
) -> None:
    with closed_period(emulator_url, db_url, billed=425) as closed:
        invoice = _cycle_invoice(closed)
        assert (invoice.status, invoice.total) == ("paid", 425 * UNIT)
        closed.late(5, "late-1")  # the ledger says 430 now; Stripe billed 425
        (report,) = [r for r in closed.reconcile() if r["final"]]
        assert (report["status"], report["local_total"]) == ("post_close", Decimal(430))
        (proposed,) = closed.corrections()
        assert {k: proposed[k] for k in ("kind", "quantity", "amount", "currency", "status")} == {
            "kind": "invoice_item",
            "quantity": "5",
            "amount": 5 * UNIT,
            "currency": "usd",
            "status": "proposed",
        }
        assert proposed["invoiceId"] == invoice.id and proposed["stripeObjectId"] is None
        assert proposed["customerRef"] == proposed["stripeCustomerId"] == closed.customer
        assert "api_calls" in proposed["description"]
        assert (
            time.strftime("%Y-%m-%d", time.gmtime(closed.world.period_start))
            in (proposed["description"])
        )
        # The period waits for its correction: not reconciled again, nothing new proposed.
        assert [r for r in closed.reconcile() if r["final"]] == []
        assert len(closed.corrections()) == 1  # the same difference proposes nothing new

        applied = closed.apply(proposed["id"])
        assert applied["status"] == "applied" and applied["stripeObjectId"].startswith("ii_")
        assert applied["appliedAt"] is not None
        again = closed.apply(proposed["id"])
        assert again == applied
        env = {
            "DATABASE_URL": db_url,
            "STRIPE_API_BASE": emulator_url,
            "STRIPE_SECRET_KEY": TEST_KEY,
        }
        by_cli = run(
            home, "corrections", "apply", "--tenant", closed.tenant, "--id", proposed["id"], **env
        )
        assert by_cli.returncode == 0, by_cli.stderr
        assert applied["stripeObjectId"] in by_cli.stdout and " applied " in by_cli.stdout
        listed = run(home, "corrections", "list", "--tenant", closed.tenant, "--json", **env)
        assert json.loads(listed.stdout)["data"] == [applied]

        (item,) = closed.invoice_items()  # exactly one, however often applied
        assert (item.id, item.quantity, item.amount, item.invoice) == (
            applied["stripeObjectId"],
            5,
            5 * UNIT,
            None,
        )
        report = closed.period_report()
        assert (report["status"], report["stripeObjectId"]) == ("resolved", item.id)
        assert (report["compared"], report["drift_abs"]) == ("430", "0")
        assert [r for r in closed.reconcile() if r["final"]] == []  # settled, not re-proposed

        # The next invoice bills it, once.
        item_now = closed.world.client.v1.subscription_items.retrieve(
            closed.world.items[closed.customer]
        )
        closed.world.advance(int(item_now.current_period_end) + 2 * HOUR)
        billed_on = closed.world.client.v1.invoice_items.retrieve(item.id).invoice
        nxt = closed.world.client.v1.invoices.retrieve(billed_on)
        assert nxt.id != invoice.id and nxt.total == 5 * UNIT
        assert [line.parent.type for line in nxt.lines.data].count("invoice_item_details") == 1
        assert len(closed.invoice_items()) == 1
        assert len(closed.corrections()) == 1


def test_over_billing_becomes_one_credit_note_restoring_the_invoice_total(
    emulator_url: str, db_url: str
) -> None:
    with closed_period(emulator_url, db_url, billed=425, rogue=5) as closed:
        invoice = _cycle_invoice(closed)
        assert invoice.total == 430 * UNIT  # Stripe billed an event the ledger never saw
        (report,) = [r for r in closed.reconcile() if r["final"]]
        assert report["status"] == "investigate"
        (proposed,) = closed.corrections()
        assert (proposed["kind"], proposed["quantity"], proposed["amount"]) == (
            "credit_note",
            "5",
            5 * UNIT,
        )
        applied = closed.apply(proposed["id"])
        assert closed.apply(proposed["id"]) == applied
        (note,) = closed.credit_notes(invoice.id)
        assert note.id == applied["stripeObjectId"] and note.id.startswith("cn_")
        assert (note.lines.data[0].quantity, note.total) == (5, 5 * UNIT)
        after = closed.world.client.v1.invoices.retrieve(invoice.id)
        credited = after.post_payment_credit_notes_amount + after.pre_payment_credit_notes_amount
        assert after.total - credited == 425 * UNIT
        assert closed.world.client.v1.customers.retrieve(closed.customer).balance == -5 * UNIT
        report = closed.period_report()
        assert (report["status"], report["stripeObjectId"], report["compared"]) == (
            "resolved",
            note.id,
            "425",
        )


def test_stripe_storing_the_item_then_failing_creates_nothing_new_on_retry(
    emulator_url: str, db_url: str
) -> None:
    with closed_period(emulator_url, db_url, billed=425) as closed:
        proposed = closed.propose_late(5, "late-1")
        # Stripe stores the item, then answers 500, on every attempt the API makes.
        _store_then_fail_invoice_items(emulator_url, times=5)
        failed = closed.apply(proposed["id"], status=503)
        assert failed["error"]["code"] == "stripe_unavailable"
        assert len(closed.invoice_items()) == 1  # stored once, though every answer failed
        (still,) = closed.corrections()
        assert still["status"] == "proposed"
        closed.late(2, "late-2")  # a changed difference must not supersede an apply begun
        closed.reconcile()
        assert [c["status"] for c in closed.corrections()] == ["proposed"]
        requests.delete(f"{emulator_url}/_emulator/faults", timeout=10).raise_for_status()
        applied = closed.apply(proposed["id"])
        (item,) = closed.invoice_items()
        assert (applied["status"], applied["stripeObjectId"]) == ("applied", item.id)
        assert item.amount == 5 * UNIT
        # What is left (the 2 later units) is proposed next, on its own.
        closed.reconcile()
        newest = closed.corrections("proposed")
        assert [(c["kind"], c["quantity"]) for c in newest] == [("invoice_item", "2")]


def test_one_lost_answer_is_retried_with_the_same_idempotency_key(
    emulator_url: str, db_url: str
) -> None:
    with closed_period(emulator_url, db_url, billed=425) as closed:
        proposed = closed.propose_late(5, "late-1")
        _store_then_fail_invoice_items(emulator_url, times=1)
        applied = closed.apply(proposed["id"])  # the gateway's retry gets the stored answer
        (item,) = closed.invoice_items()
        assert applied["stripeObjectId"] == item.id


def test_a_dry_run_changes_nothing(emulator_url: str, db_url: str, home: Path) -> None:
    with closed_period(emulator_url, db_url, billed=425) as closed:
        proposed = closed.propose_late(5, "late-1")
        assert closed.apply(proposed["id"], dryRun="true") == proposed
        env = {
            "DATABASE_URL": db_url,
            "STRIPE_API_BASE": "http://127.0.0.1:9",
            "STRIPE_SECRET_KEY": TEST_KEY,
        }
        dry = run(
            home, "corrections", "apply", "--tenant", closed.tenant, "--all", "--dry-run", **env
        )
        assert dry.returncode == 0, dry.stderr
        assert proposed["id"] in dry.stdout and "would apply 1 correction(s)" in dry.stderr
        assert closed.corrections() == [proposed]
        assert closed.invoice_items() == []
        assert closed.period_report()["status"] == "post_close"


def test_unknown_or_foreign_corrections_are_not_found_and_bad_input_is_named(
    emulator_url: str, db_url: str, home: Path
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    tenant = str(world.tenant_id)
    with psycopg.connect(db_url) as conn:
        mine = create_api_key(conn, tenant, "t", scopes=["read", "admin"]).secret
        other = create_api_key(conn, "someone-else", "o", scopes=["read", "admin"]).secret
        reader = create_api_key(conn, tenant, "r", scopes=["read"]).secret
        (correction_id,) = conn.execute(
            "INSERT INTO corrections (tenant_id, metric, customer_ref, stripe_customer_id,"
            " subscription_id, subscription_item_id, price_id, period_start, period_end,"
            " invoice_id, kind, quantity, amount, currency, description, ledger_quantity,"
            " billed_quantity) VALUES (%s, 'api_calls', 'c', 'cus_x', 'sub_x', 'si_x',"
            " 'price_x', now() - interval '31 days', now() - interval '1 day', 'in_x',"
            " 'invoice_item', 5, 25, 'usd', 'd', 430, 425) RETURNING id",
            (tenant,),
        ).fetchone()
    settings = load_settings(
        DATABASE_URL=db_url, STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY
    )
    with running_api(settings, db_url) as api:

        def call(method: str, path: str, key: str, **params: str) -> requests.Response:
            return requests.request(
                method,
                api + path,
                params=params,
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )

        unknown = call("POST", "/v1/corrections/00000000-0000-4000-8000-000000000000/apply", mine)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (
            404,
            "correction_not_found",
        )
        foreign = call("POST", f"/v1/corrections/{correction_id}/apply", other)
        assert (foreign.status_code, foreign.json()["error"]["code"]) == (
            404,
            "correction_not_found",
        )
        assert call("GET", "/v1/corrections", other).json() == {"data": []}
        assert call("GET", "/v1/corrections", other, tenantId=tenant).status_code == 403
        bad = call("GET", "/v1/corrections", mine, status="done")
        assert bad.status_code == 400
        assert (
            bad.json()["error"]["field"] == "status"
            and "proposed" in bad.json()["error"]["message"]
        )
        not_an_id = call("POST", "/v1/corrections/nope/apply", mine)
        assert (not_an_id.status_code, not_an_id.json()["error"]["field"]) == (400, "correctionId")
        forbidden = call("POST", f"/v1/corrections/{correction_id}/apply", reader, dryRun="true")
        assert forbidden.status_code == 403
        listed = call("GET", "/v1/corrections", reader)
        assert [c["id"] for c in listed.json()["data"]] == [str(correction_id)]
        assert call("GET", "/v1/corrections", mine, status="applied").json() == {"data": []}

    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": emulator_url, "STRIPE_SECRET_KEY": TEST_KEY}
    for args, needle in [
        (("apply", "--tenant", "someone-else", "--id", str(correction_id)), "no correction"),
        (("apply", "--tenant", tenant, "--id", "nope"), "not a correction id"),
        (("apply", "--tenant", tenant), "one of the arguments --id --all is required"),
        (("list", "--tenant", tenant, "--status", "done"), "invalid choice"),
    ]:
        result = run(home, "corrections", *args, **env)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert needle in result.stderr.strip().splitlines()[-1], result.stderr  # one line says


def test_a_changed_difference_supersedes_the_proposal(emulator_url: str, db_url: str) -> None:
    with closed_period(emulator_url, db_url, billed=425) as closed:
        first = closed.propose_late(5, "late-1")
        closed.late(3, "late-2")
        closed.reconcile()
        newest, old = closed.corrections()
        assert (old["id"], old["status"]) == (first["id"], "superseded")
        assert (newest["status"], newest["quantity"], newest["amount"]) == (
            "proposed",
            "8",
            8 * UNIT,
        )
        closed.reconcile()
        assert len(closed.corrections()) == 2
        refused = closed.apply(first["id"], status=409)
        assert refused["error"]["code"] == "correction_superseded"
        assert closed.invoice_items() == []
        closed.apply(newest["id"])
        assert [i.amount for i in closed.invoice_items()] == [8 * UNIT]


def test_auto_apply_corrects_in_the_reconciler_run(emulator_url: str, db_url: str) -> None:
    with closed_period(emulator_url, db_url, billed=425, CORRECTIONS_AUTO_APPLY=True) as closed:
        closed.late(5, "late-1")
        resolved = [r for r in closed.reconcile() if r["status"] == "resolved"]
        (item,) = closed.invoice_items()
        assert [r["stripe_object_id"] for r in resolved] == [item.id]
        (applied,) = closed.corrections()
        assert applied["status"] == "applied"
        closed.reconcile()
        assert len(closed.invoice_items()) == 1


def _store_then_fail_invoice_items(emulator_url: str, *, times: int) -> None:
    """The emulator stores the next `times` invoice items, then answers each with a 500."""
    fault(
        emulator_url,
        method="POST",
        path="/v1/invoiceitems",
        status=500,
        count=times,
        after_commit=True,
    )
