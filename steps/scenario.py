"""Run scenarios (`scenarios/<name>.toml`) against the stack and check every invoice.

    python -m steps.scenario [--only NAME ...] [--dir DIR] [--json] [--keep]

Each scenario runs as a user would, through the stripemeter HTTP API, the `stripemeter`
CLI and the Stripe SDK only: its own tenant and API key, a test clock with its 1-3
customers, the meter, price and subscriptions, the bindings and the mapping; then per
cycle (ARCHITECTURE.md § Timeline of the demo, repeated):

1. advance the clock to F = period start + 26 h - 5 min; send the `open` usage (waiting
   for the writer before each `after_writer` request), the meter events meant to reach
   Stripe behind the service's back, the cancellations of this cycle;
2. wait for the writer, advance to just past the period end (the draft renewal invoice
   exists); send the `grace` usage; wait for the writer;
3. advance past finalization (1 h later); send the `post_close` usage; wait for the
   writer; reconcile (`POST /v1/reconciliation/run?wait=true`); apply the proposed
   corrections (`stripemeter corrections apply --all`); reconcile again.

Afterwards every applied correction is applied once more (it must create nothing new),
every invoice of every customer is read from Stripe and compared with the oracle
(`stripemeter_dev.scenarios.oracle`), and the clock and mapping are removed (unless
`--keep`). The matrix scenario x customer x invoice is printed and written to
`DEMO_STATE_DIR/scenarios.json`. Exit 0 when every cell is at parity, 2 on drift, 1 when
a scenario could not be run (the others still run).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import stripe

from steps._billing import (
    as_decimal,
    ceil_hour,
    ensure_meter,
    fmt,
    is_missing,
    iso,
    meter_total,
    retrieve_clock,
    to_plain,
    wait_clock_ready,
)
from steps._env import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    METRIC,
    StepEnv,
    StepError,
    load_env,
    main,
    parser,
)
from steps._http import ApiClient
from steps._scenario_matrix import Cell, compare_customer, epoch, print_matrix
from steps._state import write_json_atomic
from steps._wait import wait_until
from stripemeter.errors import StripemeterError
from stripemeter_dev.scenarios.loader import load_scenario, scenario_names, scenario_path
from stripemeter_dev.scenarios.model import Scenario, UsageRequest
from stripemeter_dev.scenarios.oracle import expected_invoices

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"
RESULT_FILE = "scenarios.json"
CLOCK_START_OFFSET_S = 26 * 3600  # as the seed's demo (steps.setup)
F_OFFSET_S = 26 * 3600 - 5 * 60  # F, the open phase's clock time, from the period start
FINALIZATION_DELAY_S = 3600
MARGIN_S = 60
FINAL_STATUSES = ("open", "paid")
# The Stripe meter formula that bills each aggregation (stripemeter.aggregations).
METER_FORMULA = {"sum": "sum", "count": "sum", "max": "last", "last": "last"}
METER_EVENT = {"sum": METRIC, "last": f"{METRIC}_last"}
# What `GET /v1/usage` field is the period's value of each aggregation.
USAGE_FIELD = {"sum": "total", "count": "events", "max": "max", "last": "last"}


def run(argv: Sequence[str]) -> int:
    """Run the chosen scenarios one after another; exit 0 parity, 2 drift, 1 error."""
    args = parser("scenario", "Run scenarios and check every invoice against the oracle.")
    args.add_argument("--only", nargs="+", action="extend", metavar="NAME", default=[])
    args.add_argument("--dir", type=Path, default=SCENARIOS_DIR, help="scenario files")
    args.add_argument("--json", action="store_true", help="print the result as JSON")
    args.add_argument("--keep", action="store_true", help="keep each scenario's clock")
    options = args.parse_args(argv)
    directory: Path = options.dir
    if not directory.is_dir():
        raise StepError(
            f"no scenario directory at {directory}: scenarios run from a checkout "
            "(`invoke scenarios`, either runner), or pass --dir"
        )
    names = list(dict.fromkeys(options.only)) or scenario_names(directory)
    if not names:
        raise StepError(f"no scenario files in {directory}")
    scenarios = [load_scenario(scenario_path(directory, name)) for name in names]
    env = load_env()
    started = time.monotonic()
    results = []
    # With --json, stdout carries the document alone; progress goes to stderr.
    progress = contextlib.redirect_stdout(sys.stderr) if options.json else contextlib.nullcontext()
    with progress:
        for scenario in scenarios:
            results.append(ScenarioRun(env, scenario, keep=options.keep).execute())
    verdicts = [r["verdict"] for r in results]
    code = EXIT_ERROR if "error" in verdicts else EXIT_DRIFT if "drift" in verdicts else EXIT_OK
    verdict = "error" if code == EXIT_ERROR else "drift" if code == EXIT_DRIFT else "parity"
    document = {
        "verdict": verdict,
        "exitCode": code,
        "wallTimeS": round(time.monotonic() - started, 1),
        "scenarios": results,
    }
    write_json_atomic(env.state_dir / RESULT_FILE, document)
    if options.json:
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
    else:
        print_matrix(results)
        print(
            f"verdict: {verdict.upper()}: {len(results)} scenario(s) in "
            f"{document['wallTimeS']} s; written to {env.state_dir / RESULT_FILE}"
        )
    return code


class ScenarioRun:
    """One scenario on its own tenant and test clock (see the module docstring)."""

    def __init__(self, env: StepEnv, scenario: Scenario, *, keep: bool = False) -> None:
        self.env = env
        self.scenario = scenario
        self.keep = keep
        self.client, self.base = env.stripe_client()
        self.tenant = str(uuid.uuid4())
        self.api = ApiClient(env.api_base)
        self.clock_id = ""
        self.mapping_id = ""
        self.meter_id = ""
        self.price_id = ""
        self.customers: dict[str, str] = {}  # customerRef -> Stripe customer id
        self.subscriptions: dict[str, str] = {}
        self.period = (0, 0)
        self.problems: list[str] = []

    def say(self, message: str) -> None:
        print(f"[{self.scenario.name}] {message}", flush=True)

    def execute(self) -> dict[str, Any]:
        """Run it; never raises for an expected failure, which becomes `verdict: error`."""
        started = time.monotonic()
        result: dict[str, Any] = {
            "name": self.scenario.name,
            "description": self.scenario.description,
            "tenantId": self.tenant,
        }
        cells: list[Cell] = []
        try:
            self.setup()
            for cycle in range(1, self.scenario.cycles + 1):
                self.cycle(cycle)
            self.reapply()
            cells = self.compare()
            verdict = "parity" if all(c.parity for c in cells) and not self.problems else "drift"
            result["error"] = None
        except (StripemeterError, stripe.StripeError) as exc:
            verdict = "error"
            result["error"] = " ".join(str(getattr(exc, "user_message", None) or exc).split())
            self.say(f"error: {result['error']}")
        finally:
            self.cleanup()
        self.problems = list(dict.fromkeys(self.problems))  # a retried request repeats them
        result.update(
            verdict=verdict,
            testClockId=self.clock_id,
            problems=self.problems,
            cells=[c.to_json() for c in cells],
            wallTimeS=round(time.monotonic() - started, 1),
        )
        self.say(f"{verdict} in {result['wallTimeS']} s")
        return result

    # -- setup -------------------------------------------------------------------

    def setup(self) -> None:
        scenario, client = self.scenario, self.client
        self.say(f"setup: tenant {self.tenant}, {len(scenario.customers)} customer(s)")
        secret = self.cli("api-keys", "create", "--tenant", self.tenant,
                          "--name", f"scenario {scenario.name}",
                          "--scope", "ingest", "--scope", "read", "--scope", "admin")  # fmt: skip
        self.api = ApiClient(
            self.env.api_base, headers={"Authorization": f"Bearer {secret.splitlines()[-1]}"}
        )
        clock = client.v1.test_helpers.test_clocks.create(
            {
                "frozen_time": int(time.time()) - CLOCK_START_OFFSET_S,
                "name": f"stripemeter scenario {scenario.name}",
            }
        )
        self.clock_id = clock.id
        formula = METER_FORMULA[scenario.aggregation]
        self.meter_id = ensure_meter(
            client, METER_EVENT[formula], formula, f"API calls ({formula})"
        )
        product = client.v1.products.create({"name": f"stripemeter scenario {scenario.name}"})
        params: Any = self.price_params(product.id, self.meter_id)  # tiers or unit_amount
        self.price_id = client.v1.prices.create(params).id
        for customer in scenario.customers:
            created = client.v1.customers.create(
                {
                    "test_clock": clock.id,
                    "name": f"{scenario.name} {customer.name}",
                    "metadata": {"tenantId": self.tenant, "customerRef": customer.name},
                }
            )
            method = client.v1.payment_methods.attach("pm_card_visa", {"customer": created.id})
            client.v1.customers.update(
                created.id, {"invoice_settings": {"default_payment_method": method.id}}
            )
            subscription = client.v1.subscriptions.create(
                {
                    "customer": created.id,
                    "items": [{"price": self.price_id}],
                    "collection_method": "charge_automatically",
                }
            )
            self.customers[customer.name] = created.id
            self.subscriptions[customer.name] = subscription.id
            self.bind(customer.name)
        mapping = self.api.post(
            "/v1/mappings",
            {
                "tenantId": self.tenant,
                "metric": METRIC,
                "aggregation": scenario.aggregation,
                "priceId": self.price_id,
                "currency": scenario.price.currency.upper(),
            },
        )
        self.mapping_id = str(mapping.get("id", "")) if isinstance(mapping, dict) else ""
        self.say(
            f"clock {clock.id}, meter {self.meter_id} ({formula}), price {self.price_id}, "
            f"customers {', '.join(f'{n}={c}' for n, c in self.customers.items())}"
        )

    def bind(self, name: str) -> None:
        """PUT the customer's binding: the service verifies the customer with Stripe and
        so learns its test clock's time (the local stack delivers no webhooks)."""
        self.api.request(
            "PUT",
            f"/v1/customers/{name}/binding",
            json={"tenantId": self.tenant, "stripeCustomerId": self.customers[name]},
            ok=(200, 201),
        )

    def price_params(self, product_id: str, meter_id: str) -> dict[str, Any]:
        price = self.scenario.price
        params: dict[str, Any] = {
            "currency": price.currency,
            "product": product_id,
            "nickname": f"scenario {self.scenario.name}",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
        }
        if price.tiers_mode is None:
            params["unit_amount"] = price.unit_amount
            return params
        params["billing_scheme"] = "tiered"
        params["tiers_mode"] = price.tiers_mode
        params["tiers"] = [
            {
                "up_to": "inf" if tier.up_to is None else tier.up_to,
                "unit_amount": tier.unit_amount,
                "flat_amount": tier.flat_amount,
            }
            for tier in price.tiers
        ]
        return params

    # -- one cycle -----------------------------------------------------------------

    def active(self, cycle: int) -> list[str]:
        """The customers billed in `cycle` (a cancelled one stops after its last)."""
        return [
            c.name for c in self.scenario.customers if c.last_cycle(self.scenario.cycles) >= cycle
        ]

    def cycle(self, cycle: int) -> None:
        scenario, client = self.scenario, self.client
        customers = self.active(cycle)
        item = client.v1.subscriptions.retrieve(self.subscriptions[customers[0]])["items"]["data"][
            0
        ]
        start, end = int(item["current_period_start"]), int(item["current_period_end"])
        self.period = (start, end)
        anchor = start + F_OFFSET_S
        of = f"cycle {cycle}/{scenario.cycles}"
        self.say(f"{of}: period {iso(start)} .. {iso(end)}; F = {iso(anchor)}")
        self.advance(anchor)
        self.send(cycle, "open", anchor)
        for extra in (x for x in scenario.stripe_extras if x.cycle == cycle):
            self.say(f"{of}: {extra.quantity} sent straight to Stripe for {extra.customer}")
            client.v1.billing.meter_events.create(
                {
                    "event_name": METER_EVENT[METER_FORMULA[scenario.aggregation]],
                    "payload": {
                        "stripe_customer_id": self.customers[extra.customer],
                        "value": str(extra.quantity),
                    },
                    "identifier": f"scenario-extra-{uuid.uuid4()}",
                    "timestamp": anchor + extra.offset_s,
                }
            )
        for customer in scenario.customers:
            if customer.cancel_at_period_end_of == cycle:
                self.say(f"{of}: {customer.name} cancels at the period end")
                client.v1.subscriptions.update(
                    self.subscriptions[customer.name], {"cancel_at_period_end": True}
                )
        self.wait_synced(customers, start, anchor + MARGIN_S)
        self.say(f"{of}: past the period end (draft invoices)")
        self.advance(end + MARGIN_S)
        if self.send(cycle, "grace", end):
            self.wait_synced(customers, start, end)
        self.say(f"{of}: past finalization")
        self.advance(end + FINALIZATION_DELAY_S + MARGIN_S)
        self.wait_finalized(customers, end)
        if self.send(cycle, "post_close", end):
            # The writer does not push into a period whose invoice is final: only pending.
            self.wait_synced(customers, start, end, meter_agrees=False)
        self.reconcile(of)
        applied = self.cli("corrections", "apply", "--tenant", self.tenant, "--all")
        for line in applied.strip().splitlines():
            self.say(f"{of}: corrections: {line}")
        self.reconcile(of)

    def advance(self, target: int) -> None:
        clock = retrieve_clock(self.client, self.clock_id)
        if clock is None:
            raise StepError(f"test clock {self.clock_id} disappeared")
        if clock.frozen_time >= target:
            return
        self.client.v1.test_helpers.test_clocks.advance(self.clock_id, {"frozen_time": target})
        wait_clock_ready(self.client, self.clock_id, self.env.wait_timeout_s)
        # Nothing tells the service: the local stack delivers no webhooks, so the service
        # learns the new time from its own re-read when the first usage dated at it comes.

    def send(self, cycle: int, phase: str, anchor: int) -> int:
        """Send a phase's requests (dated against `anchor`); how many there were."""
        requests = self.scenario.requests_of(cycle, phase)
        if not requests:
            return 0
        counts = {"accepted": 0, "duplicate": 0}
        for request in requests:
            if request.after_writer:
                self.wait_synced(
                    sorted({e.customer for e in request.events}), *self.period_window(anchor, phase)
                )
            first = self.post(request, anchor)
            for status in first:
                counts[status] = counts.get(status, 0) + 1
            for _ in range(request.sends - 1):
                # A retry (same Idempotency-Key, same body) stores nothing new: every event
                # it carries is reported a duplicate (as `invoke send-usage` run twice).
                again = self.post(request, anchor)
                if any(status != "duplicate" for status in again):
                    self.problems.append(f"request {request.key} sent again answered {again}")
                counts["retried"] = counts.get("retried", 0) + len(again)
        self.say(
            f"cycle {cycle}: {phase}: {len(requests)} request(s), "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        return len(requests)

    def period_window(self, anchor: int, phase: str) -> tuple[int, int]:
        start, end = self.period
        return (start, anchor + MARGIN_S) if phase == "open" else (start, end)

    def post(self, request: UsageRequest, anchor: int) -> list[str]:
        body = {
            "events": [
                {
                    "tenantId": self.tenant,
                    "metric": METRIC,
                    "customerRef": event.customer,
                    "quantity": json_number(event.quantity),
                    "ts": iso(anchor + event.offset_s),
                    "idempotencyKey": event.key,
                    "source": f"scenario-{self.scenario.name}",
                }
                for event in request.events
            ]
        }
        answer = self.api.post(
            "/v1/events/ingest",
            body,
            headers={"Idempotency-Key": request.key},
            ok=(200, 201, 202, 400),  # 400: every event refused, each named in `errors`
        )
        results = answer.get("results") if isinstance(answer, dict) else None
        if results is None and isinstance(answer, dict):
            errors = answer.get("errors")
            if isinstance(errors, list) and len(errors) == len(request.events):
                results = [{"status": "refused", "error": e.get("error")} for e in errors]
        if not isinstance(results, list) or len(results) != len(request.events):
            raise StepError(
                f"POST /v1/events/ingest answered without one result per event: {answer}"
            )
        statuses = []
        for event, outcome in zip(request.events, results, strict=True):
            status = str(outcome.get("status")) if isinstance(outcome, dict) else str(outcome)
            if status not in ("accepted", "duplicate"):
                error = outcome.get("error") if isinstance(outcome, dict) else None
                detail = error.get("message") if isinstance(error, dict) else error
                # The service refusing usage the scenario sends is drift, not a runner error:
                # it is usage the customer will not be billed for.
                self.problems.append(f"event {event.key} refused: {detail or status}")
            statuses.append(status)
        return statuses

    def wait_synced(
        self, customers: Sequence[str], start: int, end: int, *, meter_agrees: bool = True
    ) -> None:
        """Wait until the writer has nothing pending and (`meter_agrees`) Stripe's meter
        shows the ledger's whole units for each customer over `[start, end)`; past the
        bound, warn and go on (what Stripe then bills is for the comparison to judge)."""
        push_absolute = self.scenario.aggregation in ("max", "last")
        field = USAGE_FIELD[self.scenario.aggregation]
        deadline = time.monotonic() + self.env.wait_timeout_s
        seen: dict[str, str] = {}

        def probe() -> tuple[bool, str]:
            status = self.api.get("/v1/writer/status", {"tenantId": self.tenant})
            pending = int(status.get("pendingBuckets", -1)) if isinstance(status, dict) else -1
            agree, parts = True, [f"pending buckets {pending}"]
            for name in customers:
                usage = self.api.get(
                    "/v1/usage",
                    {
                        "tenantId": self.tenant,
                        "metric": METRIC,
                        "customerRef": name,
                        "from": iso(ceil_hour(start)),
                        "to": iso(ceil_hour(end)),
                    },
                )
                local = as_decimal((usage or {}).get(field) or 0, f"usage {field}")
                units = int(local // 1)
                remote = meter_total(self.client, self.meter_id, self.customers[name], start, end)
                agree = agree and (
                    not meter_agrees or (remote == units if push_absolute else remote >= units)
                )
                parts.append(f"{name}: ledger {fmt(local)}, Stripe {fmt(remote)}")
            seen["last"] = ", ".join(parts)
            if time.monotonic() >= deadline:
                seen["timed_out"] = "yes"
                return True, seen["last"]
            return pending == 0 and agree, seen["last"]

        wait_until(
            "the writer to push the ledger to Stripe",
            probe,
            timeout_s=self.env.wait_timeout_s + 30,
        )
        if seen.get("timed_out"):
            self.say(f"  WARNING: going on without agreement ({seen['last']})")

    def wait_finalized(self, customers: Sequence[str], end: int) -> None:
        def probe() -> tuple[bool, str]:
            waiting = []
            for name in customers:
                invoices = self.client.v1.invoices.list(
                    {"customer": self.customers[name], "limit": 100}
                ).auto_paging_iter()
                closing = [
                    i for i in invoices
                    if i.billing_reason == "subscription_cycle" and i.period_end == end
                ]  # fmt: skip
                if not closing or closing[0].status not in FINAL_STATUSES:
                    waiting.append(f"{name}: {closing[0].status if closing else 'no invoice'}")
            return not waiting, ", ".join(waiting) or "all final"

        wait_until("the renewal invoices to be finalized", probe, timeout_s=self.env.wait_timeout_s)

    def reconcile(self, of: str) -> None:
        answer = self.api.post(
            "/v1/reconciliation/run", {"tenantId": self.tenant}, params={"wait": "true"}
        )
        if not isinstance(answer, dict):
            raise StepError(f"POST /v1/reconciliation/run answered {answer!r}")
        if answer.get("status") not in ("done", "failed"):
            answer = self.finished_run(str(answer.get("runId")))
        if answer.get("status") == "failed":
            raise StepError(
                f"reconciliation run {answer.get('runId')} failed: {answer.get('error')}"
            )
        reports = answer.get("reports")
        statuses = sorted({str(r.get("status")) for r in reports or []})
        self.say(f"{of}: reconciled, {len(reports or [])} report(s) {', '.join(statuses)}".rstrip())

    def finished_run(self, run_id: str) -> dict[str, Any]:
        """Poll a queued reconciliation run until it is done or failed."""
        latest: dict[str, Any] = {}

        def probe() -> tuple[bool, str]:
            run = self.api.get(f"/v1/reconciliation/runs/{run_id}")
            latest.update(run if isinstance(run, dict) else {})
            return latest.get("status") in ("done", "failed"), f"run {latest.get('status')}"

        wait_until(f"reconciliation run {run_id}", probe, timeout_s=self.env.wait_timeout_s)
        return latest

    def latest_reports(self, starts: set[int]) -> dict[tuple[str, int], dict[str, Any]]:
        """The latest report of every (customerRef, period) starting in those months."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for month in sorted({iso(start)[:7] for start in starts}):
            answer = self.api.get(f"/v1/reconciliation/{month}", {"tenantId": self.tenant})
            for report in (answer or {}).get("reports", []):
                found[(str(report.get("customerRef")), epoch(report.get("periodStart")))] = report
        return found

    # -- the end -------------------------------------------------------------------

    def corrections(self) -> list[dict[str, Any]]:
        answer = self.api.get("/v1/corrections", {"tenantId": self.tenant})
        data = answer.get("data") if isinstance(answer, dict) else None
        return [c for c in data or [] if isinstance(c, dict)]

    def reapply(self) -> None:
        """Apply every applied correction again: each must come back unchanged."""
        for correction in self.corrections():
            if correction.get("status") != "applied":
                continue
            again = self.api.post(f"/v1/corrections/{correction['id']}/apply", None)
            if not isinstance(again, dict) or again.get("stripeObjectId") != correction.get(
                "stripeObjectId"
            ):
                self.problems.append(
                    f"applying correction {correction['id']} again changed it: {again}"
                )
        if self.problems:
            self.say(f"re-applying corrections: {'; '.join(self.problems)}")

    def compare(self) -> list[Cell]:
        expected = expected_invoices(self.scenario)
        corrections = self.corrections()
        cells: list[Cell] = []
        read: dict[str, list[tuple[Any, list[Any], list[Any]]]] = {}
        for name, customer_id in self.customers.items():
            invoices = read[name] = []
            for invoice in self.client.v1.invoices.list(
                {"customer": customer_id, "limit": 100}
            ).auto_paging_iter():
                lines = self.client.v1.invoices.line_items.list(invoice.id, {"limit": 100})
                notes = self.client.v1.credit_notes.list({"invoice": invoice.id, "limit": 100})
                invoices.append(
                    (
                        invoice,
                        [to_plain(line) for line in lines.auto_paging_iter()],
                        [to_plain(note) for note in notes.auto_paging_iter()],
                    )
                )
        reports = self.latest_reports(
            {int(i.period_start) for found in read.values() for i, _, _ in found}
        )
        for name, customer_id in self.customers.items():
            cells += compare_customer(
                scenario=self.scenario.name,
                customer=name,
                customer_id=customer_id,
                price_id=self.price_id,
                expected=[e for e in expected if e.customer == name],
                invoices=read[name],
                reports=reports,
                corrections=[c for c in corrections if c.get("customerRef") == name],
            )
        return cells

    def cleanup(self) -> None:
        if self.keep:
            return
        try:
            if self.mapping_id:
                self.api.request("DELETE", f"/v1/mappings/{self.mapping_id}", ok=(200, 404))
            if self.clock_id:
                self.client.v1.test_helpers.test_clocks.delete(self.clock_id)
        except stripe.InvalidRequestError as exc:
            if not is_missing(exc):
                self.say(f"cleanup: {exc.user_message or exc}")
        except (StripemeterError, stripe.StripeError) as exc:
            self.say(f"cleanup: {exc}")

    def cli(self, *args: str) -> str:
        """Run `stripemeter <args>` as a user would; its stdout, or a StepError."""
        return run_cli(list(args))


def json_number(value: Decimal) -> int | float:
    """A quantity as the JSON number the API takes (a float prints as its shortest
    decimal, so 0.25 is sent as 0.25 and read back exactly)."""
    return int(value) if value == value.to_integral_value() else float(value)


def run_cli(args: list[str]) -> str:
    """`stripemeter <args>` (the console script beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "stripemeter"
    command = str(beside) if beside.exists() else shutil.which("stripemeter")
    if command is None:
        raise StepError("the `stripemeter` command is not installed (pip install -e .)")
    done = subprocess.run(
        [command, *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise StepError(f"stripemeter {' '.join(args[:2])} exited {done.returncode}: {last}")
    return done.stdout


if __name__ == "__main__":
    main("scenario", run)
