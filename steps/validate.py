"""Step 4 (seed: validate.sh): does every invoice of the demo bill what the ledger holds?

It runs reconciliation (`POST /v1/reconciliation/run?wait=true`, so corrections after
close are proposed and the summary is fresh), then checks, from the ledger
(`GET /v1/usage`) and from Stripe itself:

1. every finalized invoice of the test clock's subscriptions on the mapped price (every
   customer, every cycle, not only the last one): its price line bills the ledger total
   for the line's period, counting the corrections applied to the period (invoice items
   add, credit notes take away; `GET /v1/corrections`);
2. the open period of every subscription against Stripe's meter summary: `pending` while
   the writer still has pushes queued (uncovered buckets or unsent outbox rows,
   `GET /v1/writer/status`), `drift` only when nothing is queued and the figures differ;
3. every `--assert` jq program, evaluated over `{summary, invoice, state, validation}`,
   is truthy; each is echoed with its result.

Each figure is at parity by the seed's one tolerance rule,
`stripemeter.reconciler.drift.within_tolerance`: drift_abs == 0 or drift_pct <=
RECONCILIATION_EPSILON; a non-zero drift within it says "within tolerance". A draft
invoice (Stripe has not finalized it yet) is `pending`, not drift.

When the tenant has no active mapping for the demo's price (deleted, or switched off),
validate warns, names the fix, and does not use the reconciler's reports (they would be
stale: nothing is reconciled without a mapping); the invoices are still compared with
the ledger, so usage sent after the mapping went away shows as drift with that cause.

`--json` prints one JSON document on stdout and nothing else (per invoice: customer,
period, ledger, Stripe meter, invoice quantity and amount, corrections, status; per open
period the same; the assertions; the overall verdict); errors still go to stderr as one
line. Exit 0 parity, 2 drift (a check failed), 1 error (could not check). Each run
appends one JSON line to `validate.log`. Invoices are re-read from Stripe, so this step
also works on its own later, after manual changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jq
import stripe

from steps._billing import (
    as_decimal,
    demo_mapping,
    fmt,
    is_missing,
    iso,
    local_total,
    meter_total,
    to_plain,
)
from steps._env import EXIT_DRIFT, EXIT_OK, METRIC, StepEnv, StepError, load_env, main, parser
from steps._http import ApiClient
from steps._state import (
    INVOICE_FILE,
    DemoState,
    append_validate_log,
    load_state,
    read_json,
    try_load_state,
)
from stripemeter.reconciler.drift import WITHIN_TOLERANCE, Drift, drift, within_tolerance

# Invoice statuses of a finalized invoice (a void one bills nothing and is skipped).
FINALIZED = ("open", "paid", "uncollectible")
# How a figure is written: `fmt` (exact text, `--json`) or `exact` (a Decimal that
# `validate.log` writes as an exact JSON number).
Figure = Callable[[Decimal], Any]
# The scenario validate checks: the seed's demo (`invoke demo`), for validate.log readers.
SCENARIO = "seed"
# Statuses of a check; only DRIFT fails validation.
PARITY, RESOLVED, PENDING, DRIFT = "parity", "resolved", "pending", "drift"


def exact(value: Decimal) -> Decimal:
    """A figure kept as its Decimal: `validate.log` writes it as an exact JSON number."""
    return value


@dataclass
class Check:
    """One period of one customer: an invoice's price line, or the open period."""

    customer: str  # the Stripe customer
    customer_ref: str  # the tenant's name for it (the ledger's key)
    period_start: int
    period_end: int
    ledger: Decimal
    stripe: Decimal  # Stripe's meter summary for the period
    billed: Decimal  # invoice quantity + applied corrections; the meter for an open period
    status: str = PARITY
    cause: str | None = None
    invoice_id: str | None = None  # None: the open period
    invoice_status: str | None = None
    invoice_quantity: Decimal | None = None
    invoice_amount: int | None = None
    currency: str | None = None
    corrections: Decimal = Decimal(0)
    correction_ids: list[str] = field(default_factory=list)
    drift: Drift = field(default_factory=lambda: drift(Decimal(0), Decimal(0)))

    def to_json(self, figure: Figure = fmt) -> dict[str, Any]:
        """The check as `--json` shows it (decimals as exact strings), or with another
        `figure` form (`validate.log`: exact JSON numbers)."""
        figures: dict[str, Any] = {
            "customer": self.customer,
            "customerRef": self.customer_ref,
            "periodStart": iso(self.period_start),
            "periodEnd": iso(self.period_end),
            "ledger": figure(self.ledger),
            "stripe": figure(self.stripe),
        }
        if self.invoice_id is not None:
            quantity = self.invoice_quantity
            figures |= {
                "invoiceId": self.invoice_id,
                "invoiceStatus": self.invoice_status,
                "invoiceQuantity": self.quantity_text if quantity is None else figure(quantity),
                "invoiceAmount": self.invoice_amount,
                "currency": self.currency,
                "corrections": figure(self.corrections),
                "correctionIds": self.correction_ids,
            }
        return figures | {
            "billed": figure(self.billed),
            "drift_abs": figure(self.drift.drift_abs),
            "drift_pct": figure(self.drift.drift_pct),
            "status": self.status,
            "tolerance": self.tolerance,
            "cause": self.cause,
        }

    @property
    def quantity_text(self) -> str:
        """The invoice quantity for people ("-" for the open period)."""
        return "-" if self.invoice_quantity is None else fmt(self.invoice_quantity)

    @property
    def tolerance(self) -> str | None:
        """ "within tolerance" for a check at parity whose drift is not 0."""
        if self.status in (PARITY, RESOLVED) and self.drift.drift_abs != 0:
            return WITHIN_TOLERANCE
        return None


@dataclass
class Assertion:
    """One `--assert` program and what it gave."""

    expression: str
    passed: bool
    gave: Any

    def to_json(self) -> dict[str, Any]:
        """As `--json` shows it."""
        return {"expression": self.expression, "passed": self.passed, "gave": self.gave}


@dataclass
class Validation:
    """Everything validate checked."""

    tenant_id: str
    epsilon: Decimal
    mapping_active: bool
    headline: Check
    invoices: list[Check]
    open_periods: list[Check]
    pending_buckets: int
    warnings: list[str] = field(default_factory=list)
    assertions: list[Assertion] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """One line per failed check."""
        found = [_describe(c) for c in [*self.invoices, *self.open_periods] if c.status == DRIFT]
        found += [
            f"assertion failed: {a.expression} (gave {json.dumps(a.gave)})"
            for a in self.assertions
            if not a.passed
        ]
        return found

    @property
    def parity(self) -> bool:
        """No check failed."""
        return not self.problems

    def to_json(self, figure: Figure = fmt) -> dict[str, Any]:
        """The one document `--json` prints (`figure`: as in `Check.to_json`)."""
        return {
            "verdict": "parity" if self.parity else "drift",
            "exitCode": EXIT_OK if self.parity else EXIT_DRIFT,
            "tenantId": self.tenant_id,
            "epsilon": str(self.epsilon) if figure is fmt else figure(self.epsilon),
            "mappingActive": self.mapping_active,
            "pendingBuckets": self.pending_buckets,
            "warnings": self.warnings,
            "invoices": [c.to_json(figure) for c in self.invoices],
            "openPeriods": [c.to_json(figure) for c in self.open_periods],
            "assertions": [a.to_json() for a in self.assertions],
            "problems": self.problems,
        }


def run(argv: Sequence[str]) -> int:
    """Validate parity; exit 0 parity, 2 drift. Errors (exit 1) are logged too."""
    args = parser("validate", "Check every invoice of the demo, and the open period.")
    args.add_argument(
        "--assert",
        dest="asserts",
        action="append",
        default=[],
        metavar="JQ",
        help="extra acceptance expression over {summary, invoice, state, validation}",
    )
    args.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="print one JSON document (and nothing else) on stdout",
    )
    options = args.parse_args(argv)
    env = load_env()
    started = time.time()
    try:
        validation, summary = _validate(env, list(options.asserts))
    except StepError as exc:
        known = try_load_state(env.state_dir)
        append_validate_log(
            env.state_dir,
            {
                "at": iso(int(started)),
                "scenario": SCENARIO,
                "tenantId": known.tenantId if known else None,
                "verdict": "error",
                "exitCode": exc.code,
                "error": str(exc),
            },
        )
        raise
    document = validation.to_json()
    if options.as_json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        _print_verdict(validation)
    head = validation.headline
    append_validate_log(
        env.state_dir,
        {
            "at": iso(int(started)),
            "scenario": SCENARIO,
            **validation.to_json(exact),
            "invoiceId": head.invoice_id,
            "invoiceStatus": head.invoice_status,
            "periodStart": iso(head.period_start),
            "periodEnd": iso(head.period_end),
            "local": head.ledger,
            "invoiceQuantity": head.invoice_quantity,
            "amount": head.invoice_amount,
            "currency": head.currency,
            "drift_abs": head.drift.drift_abs,
            "drift_pct": head.drift.drift_pct,
            "asserts": list(options.asserts),
            "summary": summary,
        },
    )
    return EXIT_OK if validation.parity else EXIT_DRIFT


def _validate(env: StepEnv, asserts: list[str]) -> tuple[Validation, Any]:
    programs = [_compile(expression) for expression in asserts]
    state = load_state(env.state_dir)
    stored = read_json(env.state_dir / INVOICE_FILE, "invoice", "run `invoke advance-clock` first")
    invoice_id = stored.get("id") if isinstance(stored, dict) else None
    if not invoice_id:
        raise StepError(
            f"{env.state_dir / INVOICE_FILE} has no invoice id; run `invoke advance-clock`"
        )
    if stored.get("customer") not in (None, state.customerId):
        raise StepError(
            f"{env.state_dir / INVOICE_FILE} is the invoice of an earlier run (customer "
            f"{stored.get('customer')}, not {state.customerId}); run `invoke advance-clock`"
        )
    client, _ = env.stripe_client(state.stripeApiBase)
    api = ApiClient(env.api_base)
    epsilon = env.settings.RECONCILIATION_EPSILON
    invoice = _fresh_invoice(client, str(invoice_id))
    _price_line(invoice, state)  # the headline invoice must bill the mapped price

    warnings: list[str] = []
    mapping_active, aggregation = demo_mapping(api, state)
    summary: Any = None
    if mapping_active:
        api.post("/v1/reconciliation/run", {"tenantId": state.tenantId}, params={"wait": "true"})
    else:
        warnings.append(
            f"tenant {state.tenantId} has no active mapping for price {state.priceId} "
            f"(metric {METRIC}): nothing is pushed to Stripe or reconciled, so the "
            "reconciler's reports are stale and are not used; run `invoke setup` to map it "
            "again"
        )
    refs = _customer_refs(api, state)
    applied = _applied_corrections(api, state)
    clock = client.v1.test_helpers.test_clocks.retrieve(state.testClockId)
    now = int(clock.frozen_time)

    invoices: list[Check] = []
    open_periods: list[Check] = []
    for sub in _subscriptions(client, state):
        customer = str(sub["customer"])
        ref = refs.get(customer)
        if ref is None:
            warnings.append(
                f"customer {customer} on test clock {state.testClockId} is not bound to "
                f"tenant {state.tenantId}: its usage is not metered here; not checked"
            )
            continue
        for inv in _invoices(client, str(sub["id"])):
            for line in _price_lines(inv, state):
                check = _invoice_check(
                    api, client, state, aggregation, (customer, ref), inv, line, applied
                )
                invoices.append(check)
        current = _open_period(api, client, state, aggregation, (customer, ref), sub, now)
        if current is not None:
            open_periods.append(current)
    invoices.sort(key=lambda c: (c.period_start, c.customer))
    head = next((c for c in invoices if c.invoice_id == invoice["id"]), None)
    if head is None:
        raise StepError(
            f"invoice {invoice['id']} is not an invoice of test clock {state.testClockId}'s "
            f"subscriptions on price {state.priceId}; run `invoke advance-clock`"
        )
    # Read after the figures: usage that arrived meanwhile is still queued, so a ledger
    # ahead of Stripe is pending, never drift, for that reason alone.
    status = api.get("/v1/writer/status", {"tenantId": state.tenantId})
    pending = int(status.get("pendingBuckets", 0)) if isinstance(status, dict) else 0
    for check in [*invoices, *open_periods]:
        _judge(check, epsilon, pending, mapping_active)

    if mapping_active:
        summary = api.get(
            "/v1/reconciliation/summary",
            {
                "tenantId": state.tenantId,
                "from": iso(head.period_start),
                "to": iso(head.period_end),
            },
        )
        if not isinstance(summary, dict) or not isinstance(summary.get("overall"), dict):
            raise StepError(f"GET /v1/reconciliation/summary answered without overall: {summary!r}")
    validation = Validation(
        tenant_id=state.tenantId,
        epsilon=epsilon,
        mapping_active=mapping_active,
        headline=head,
        invoices=invoices,
        open_periods=open_periods,
        pending_buckets=pending,
        warnings=warnings,
    )
    document = {
        "summary": summary,
        "invoice": invoice,
        "state": state.to_json(),
        "validation": validation.to_json(),
    }
    for expression, program in zip(asserts, programs, strict=True):
        validation.assertions.append(_evaluate(expression, program, document))
    return validation, summary


def _judge(check: Check, epsilon: Decimal, pending: int, mapping_active: bool) -> None:
    """Set the check's drift, status and cause by the one tolerance rule."""
    check.drift = drift(check.ledger, check.billed)
    if check.invoice_id is not None and check.invoice_status == "draft":
        check.status, check.cause = PENDING, "the invoice is a draft; Stripe has not finalized it"
        return
    if within_tolerance(check.drift, epsilon):
        check.status = RESOLVED if check.correction_ids else PARITY
        return
    if not mapping_active:
        check.status = DRIFT
        check.cause = "no active mapping: nothing is pushed or corrected (`invoke setup` maps it)"
    elif check.invoice_id is None and pending and check.billed < check.ledger:
        check.status = PENDING
        check.cause = f"the writer has {pending} bucket(s) to push; Stripe will catch up"
    elif check.invoice_id is None:
        check.status = DRIFT
        check.cause = (
            "Stripe's meter holds more than the ledger: usage reached Stripe without the writer"
            if check.billed > check.ledger
            else "nothing is queued, yet Stripe's meter holds less than the ledger"
        )
    elif check.ledger > check.billed:
        check.status = DRIFT
        check.cause = (
            "Stripe billed less than the ledger (usage after the invoice was final?): "
            "`stripemeter corrections list` shows the proposed correction, "
            "`stripemeter corrections apply` bills it"
        )
    else:
        check.status = DRIFT
        check.cause = (
            "Stripe billed more than the ledger (usage sent without the writer?): "
            "`stripemeter corrections apply` credits the proposed correction"
        )


def _describe(check: Check) -> str:
    where = f"invoice {check.invoice_id}" if check.invoice_id is not None else "the open period"
    billed = "invoice quantity" if check.invoice_id is not None else "Stripe meter"
    if check.corrections:
        billed = "invoice quantity with corrections"
    return (
        f"{where} of {check.customer_ref} ({iso(check.period_start)} .. "
        f"{iso(check.period_end)}): {billed} {fmt(check.billed)} != ledger {fmt(check.ledger)} "
        f"(drift {fmt(check.billed - check.ledger)}): {check.cause}"
    )


def _invoice_check(
    api: ApiClient,
    client: stripe.StripeClient,
    state: DemoState,
    aggregation: str,
    who: tuple[str, str],
    invoice: dict[str, Any],
    line: dict[str, Any],
    applied: dict[tuple[str, str], list[dict[str, Any]]],
) -> Check:
    """An invoice's price line (Stripe customer, customerRef = `who`) against the ledger."""
    customer, ref = who
    start, end = int(line["period"]["start"]), int(line["period"]["end"])
    quantity = as_decimal(line.get("quantity_decimal") or line["quantity"], "line quantity")
    fixes = applied.get((ref, iso(start)), [])
    corrections = sum(
        (
            as_decimal(c["quantity"], "correction quantity")
            * (1 if c["kind"] == "invoice_item" else -1)
            for c in fixes
        ),
        Decimal(0),
    )
    return Check(
        customer=customer,
        customer_ref=ref,
        period_start=start,
        period_end=end,
        ledger=local_total(api, state, start, end, ref, aggregation),
        stripe=meter_total(client, state.meterId, customer, start, end),
        billed=quantity + corrections,
        invoice_id=str(invoice["id"]),
        invoice_status=str(invoice.get("status")),
        invoice_quantity=quantity,
        invoice_amount=int(line.get("amount") or 0),
        currency=str(line.get("currency") or invoice.get("currency") or ""),
        corrections=corrections,
        correction_ids=[str(c["id"]) for c in fixes],
    )


def _open_period(
    api: ApiClient,
    client: stripe.StripeClient,
    state: DemoState,
    aggregation: str,
    who: tuple[str, str],
    sub: dict[str, Any],
    now: int,
) -> Check | None:
    """The current period of the subscription's item on the price, up to the clock's now
    (the same window the writer's wait uses), or None when it has none (canceled)."""
    customer, ref = who
    if sub.get("status") in ("canceled", "incomplete_expired"):
        return None
    item = next(
        (i for i in sub["items"]["data"] if (i.get("price") or {}).get("id") == state.priceId),
        None,
    )
    if item is None:
        return None
    start, end = int(item["current_period_start"]), int(item["current_period_end"])
    until = min(end, max(now, start) + 60)
    stripe_total = meter_total(client, state.meterId, customer, start, until)
    return Check(
        customer=customer,
        customer_ref=ref,
        period_start=start,
        period_end=end,
        ledger=local_total(api, state, start, end, ref, aggregation),
        stripe=stripe_total,
        billed=stripe_total,
    )


def _customer_refs(api: ApiClient, state: DemoState) -> dict[str, str]:
    """Stripe customer -> the tenant's customerRef, from the tenant's bindings (the demo
    binds its customer under its own id)."""
    body = api.get("/v1/customers/bindings", {"tenantId": state.tenantId})
    rows = body.get("bindings") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise StepError(f"GET /v1/customers/bindings answered without bindings: {body!r}")
    refs = {str(r["stripeCustomerId"]): str(r["customerRef"]) for r in rows if isinstance(r, dict)}
    refs.setdefault(state.customerId, state.customerId)
    return refs


def _applied_corrections(
    api: ApiClient, state: DemoState
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The tenant's applied corrections by (customerRef, periodStart)."""
    body = api.get("/v1/corrections", {"tenantId": state.tenantId, "status": "applied"})
    rows = body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise StepError(f"GET /v1/corrections answered without data: {body!r}")
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if isinstance(row, dict) and row.get("metric") == METRIC:
            found.setdefault((str(row["customerRef"]), str(row["periodStart"])), []).append(row)
    return found


def _subscriptions(client: stripe.StripeClient, state: DemoState) -> list[dict[str, Any]]:
    """Every subscription of the demo's test clock on the mapped price, canceled too."""
    listed = client.v1.subscriptions.list(
        {"test_clock": state.testClockId, "price": state.priceId, "status": "all", "limit": 100}
    )
    subs = [to_plain(sub) for sub in listed.auto_paging_iter()]
    return sorted(subs, key=lambda s: (str(s["customer"]), str(s["id"])))


def _invoices(client: stripe.StripeClient, subscription_id: str) -> list[dict[str, Any]]:
    """The subscription's finalized and draft invoices, oldest first, with all lines.

    The creation invoice is skipped, as the reconciler skips it: its metered line
    (quantity 0) names the new period, which a later invoice bills in arrears.
    """
    listed = client.v1.invoices.list({"subscription": subscription_id, "limit": 100})
    found = []
    for invoice in listed.auto_paging_iter():
        if invoice.billing_reason == "subscription_create":
            continue
        if invoice.status in (*FINALIZED, "draft"):
            found.append(_with_lines(client, to_plain(invoice)))
    return sorted(found, key=lambda i: (int(i["created"]), str(i["id"])))


def _compile(expression: str) -> Any:
    try:
        return jq.compile(expression)
    except ValueError as exc:
        raise StepError(f"--assert {expression!r} is not a valid jq program: {exc}") from None


def _evaluate(expression: str, program: Any, document: Any) -> Assertion:
    """Passed when the jq program yields only truthy values."""
    try:
        results = program.input_value(document).all()
    except ValueError as exc:
        raise StepError(f"--assert {expression!r} failed to run: {exc}") from None
    passed = bool(results) and all(value not in (None, False) for value in results)
    return Assertion(expression, passed, results[0] if len(results) == 1 else results)


def _fresh_invoice(client: stripe.StripeClient, invoice_id: str) -> dict[str, Any]:
    """The invoice as Stripe has it now, with all its lines, as plain JSON data."""
    try:
        invoice = client.v1.invoices.retrieve(invoice_id)
    except stripe.InvalidRequestError as exc:
        if is_missing(exc):
            raise StepError(
                f"invoice {invoice_id} no longer exists in Stripe (cleaned up?); "
                "run `invoke setup` and the steps after it"
            ) from None
        raise
    return _with_lines(client, to_plain(invoice))


def _with_lines(client: stripe.StripeClient, document: dict[str, Any]) -> dict[str, Any]:
    """The invoice document with every one of its lines (a list shows only the first)."""
    invoice_id = str(document["id"])
    lines = client.v1.invoices.line_items.list(invoice_id, {"limit": 100}).auto_paging_iter()
    document["lines"] = {
        "object": "list",
        "data": [to_plain(line) for line in lines],
        "has_more": False,
        "url": f"/v1/invoices/{invoice_id}/lines",
    }
    return document


def _price_lines(invoice: dict[str, Any], state: DemoState) -> list[dict[str, Any]]:
    """The invoice's subscription lines for the mapped price (not invoice items, which
    carry corrections and are counted from the corrections themselves)."""
    found = []
    for line in invoice["lines"]["data"]:
        parent = line.get("parent") or {}
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
        is_item = parent.get("type") == "invoice_item_details"
        period = line.get("period") or {}
        if price == state.priceId and not is_item and period.get("end") != period.get("start"):
            found.append(dict(line))
    return found


def _price_line(invoice: dict[str, Any], state: DemoState) -> dict[str, Any]:
    lines = _price_lines(invoice, state)
    if not lines:
        raise StepError(f"invoice {invoice['id']} has no line for the mapped price {state.priceId}")
    return lines[0]


def _print_verdict(validation: Validation) -> None:
    head = validation.headline
    epsilon = validation.epsilon
    for warning in validation.warnings:
        print(f"WARNING: {warning}")
    print(
        f"invoice {head.invoice_id} for the period "
        f"{iso(head.period_start)} .. {iso(head.period_end)}"
    )
    rows = [
        ("ledger total (local)", fmt(head.ledger)),
        ("invoice quantity", head.quantity_text),
        ("invoice amount", f"{head.invoice_amount} {head.currency}"),
        ("Stripe meter", fmt(head.stripe)),
    ]
    if head.corrections:
        rows.append(
            ("corrections applied", f"{fmt(head.corrections)} ({', '.join(head.correction_ids)})")
        )
        rows.append(("billed with corrections", fmt(head.billed)))
    note = f", {WITHIN_TOLERANCE}" if head.tolerance else ""
    rows += [
        (
            "drift",
            f"{fmt(head.drift.drift_abs)} (drift_pct {fmt(head.drift.drift_pct)}, "
            f"epsilon {epsilon}{note})",
        ),
        ("invoice status", str(head.invoice_status)),
    ]
    for label, value in rows:
        print(f"  {label:<22} {value}")
    print(
        f"every invoice of the clock's subscriptions ({len(validation.invoices)}), "
        "and the open period:"
    )
    for check in [*validation.invoices, *validation.open_periods]:
        print(f"  {_row(check)}")
    for assertion in validation.assertions:
        outcome = "ok" if assertion.passed else f"FAILED (gave {json.dumps(assertion.gave)})"
        print(f"  assert {assertion.expression}: {outcome}")
    problems = validation.problems
    for problem in problems:
        print(f"  DRIFT: {problem}")
    facts = (
        f"local {fmt(head.ledger)}, invoice quantity {head.quantity_text}, "
        f"amount {head.invoice_amount}, drift {fmt(head.drift.drift_abs)}"
        f"{' ' + WITHIN_TOLERANCE if head.tolerance else ''}, invoice {head.invoice_status}"
    )
    checked = len(validation.invoices)
    if validation.parity:
        print(f"verdict: PARITY: {facts} ({checked} invoice(s) checked)")
    else:
        print(f"verdict: DRIFT: {facts}; {'; '.join(problems)}")


def _row(check: Check) -> str:
    period = f"{iso(check.period_start)[:10]} .. {iso(check.period_end)[:10]}"
    if check.invoice_id is None:
        what = f"open period  meter {fmt(check.stripe)}"
    else:
        what = (
            f"{check.invoice_id} ({check.invoice_status})  invoiced {check.quantity_text}"
            f"  amount {check.invoice_amount} {check.currency}"
        )
        if check.corrections:
            what += f"  corrections {fmt(check.corrections)}"
    status = check.status.upper()
    if check.tolerance:
        status += f" ({WITHIN_TOLERANCE})"
    cause = f": {check.cause}" if check.cause and check.status != DRIFT else ""
    return f"{check.customer_ref}  {period}  ledger {fmt(check.ledger)}  {what}  {status}{cause}"


if __name__ == "__main__":
    main("validate", run)
