"""Step 4 (seed: validate.sh): is the finalized invoice exactly what the ledger holds?

It runs reconciliation (`POST /v1/reconciliation/run?wait=true`), reads the summary for
the invoice line's period, and checks:

1. the invoice line for the mapped price bills the ledger total for the line's period,
   within tolerance — the parity the seed promised but never looked at;
2. the reconciler's overall drift is within tolerance;
3. every `--assert` jq program, evaluated over `{summary, invoice, state}`, is truthy.

"Within tolerance" is the seed's one rule, `stripemeter.reconciler.drift.within_tolerance`:
drift_abs == 0 or drift_pct <= RECONCILIATION_EPSILON.

Exit 0 parity, 2 drift (a check failed), 1 error (could not check). Each run appends one
JSON line to `validate.log`. The invoice is re-read from Stripe, so this step also works
on its own later, after manual changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jq
import stripe

from steps._billing import as_decimal, fmt, is_missing, iso, local_total, to_plain
from steps._env import EXIT_DRIFT, EXIT_OK, StepEnv, StepError, load_env, main, parser
from steps._http import ApiClient
from steps._state import INVOICE_FILE, DemoState, append_validate_log, load_state, read_json
from stripemeter.reconciler.drift import absolute_drift, drift, within_tolerance


@dataclass
class Findings:
    """What validation measured, and what failed."""

    invoice_id: str = ""
    invoice_status: str = ""
    period_start: int = 0
    period_end: int = 0
    local: Decimal = Decimal(0)
    quantity: Decimal = Decimal(0)
    amount: int = 0
    currency: str = ""
    # What the reconciler compared the ledger with: the invoice quantity for a closed
    # period, the meter summary for an open one (summary `overall.stripe`).
    stripe_reconciled: Decimal = Decimal(0)
    drift_abs: Decimal = Decimal(0)
    drift_pct: Decimal = Decimal(0)
    problems: list[str] = field(default_factory=list)


def run(argv: Sequence[str]) -> int:
    """Validate parity; exit 0 parity, 2 drift. Errors (exit 1) are logged too."""
    args = parser("validate", "Check invoice parity against the ledger.")
    args.add_argument(
        "--assert",
        dest="asserts",
        action="append",
        default=[],
        metavar="JQ",
        help="extra acceptance expression over {summary, invoice, state}",
    )
    options = args.parse_args(argv)
    env = load_env()
    started = time.time()
    try:
        findings, summary = _validate(env, list(options.asserts))
    except StepError as exc:
        append_validate_log(
            env.state_dir,
            {"at": iso(int(started)), "verdict": "error", "exitCode": exc.code, "error": str(exc)},
        )
        raise
    parity = not findings.problems
    _print_verdict(findings, parity, env.settings.RECONCILIATION_EPSILON)
    append_validate_log(
        env.state_dir,
        {
            "at": iso(int(started)),
            "verdict": "parity" if parity else "drift",
            "exitCode": EXIT_OK if parity else EXIT_DRIFT,
            "invoiceId": findings.invoice_id,
            "invoiceStatus": findings.invoice_status,
            "periodStart": iso(findings.period_start),
            "periodEnd": iso(findings.period_end),
            "local": fmt(findings.local),
            "invoiceQuantity": fmt(findings.quantity),
            "amount": findings.amount,
            "currency": findings.currency,
            "drift_abs": fmt(findings.drift_abs),
            "drift_pct": fmt(findings.drift_pct),
            "epsilon": str(env.settings.RECONCILIATION_EPSILON),
            "asserts": list(options.asserts),
            "problems": findings.problems,
            "summary": summary,
        },
    )
    return EXIT_OK if parity else EXIT_DRIFT


def _validate(env: StepEnv, asserts: list[str]) -> tuple[Findings, Any]:
    programs = [_compile(expression) for expression in asserts]
    state = load_state(env.state_dir)
    stored = read_json(env.state_dir / INVOICE_FILE, "invoice", "run `invoke advance-clock` first")
    invoice_id = stored.get("id") if isinstance(stored, dict) else None
    if not invoice_id:
        raise StepError(
            f"{env.state_dir / INVOICE_FILE} has no invoice id; run `invoke advance-clock`"
        )
    client, _ = env.stripe_client(state.stripeApiBase)
    api = ApiClient(env.api_base)

    if stored.get("customer") not in (None, state.customerId):
        raise StepError(
            f"{env.state_dir / INVOICE_FILE} is the invoice of an earlier run (customer "
            f"{stored.get('customer')}, not {state.customerId}); run `invoke advance-clock`"
        )
    invoice = _fresh_invoice(client, str(invoice_id))
    line = _price_line(invoice, state)
    findings = Findings(
        invoice_id=invoice["id"],
        invoice_status=str(invoice.get("status")),
        period_start=int(line["period"]["start"]),
        period_end=int(line["period"]["end"]),
        quantity=as_decimal(line.get("quantity_decimal") or line["quantity"], "line quantity"),
        amount=int(line.get("amount") or 0),
        currency=str(line.get("currency") or invoice.get("currency") or ""),
    )

    api.post("/v1/reconciliation/run", {"tenantId": state.tenantId}, params={"wait": "true"})
    summary = api.get(
        "/v1/reconciliation/summary",
        {
            "tenantId": state.tenantId,
            "from": iso(findings.period_start),
            "to": iso(findings.period_end),
        },
    )
    overall = summary.get("overall") if isinstance(summary, dict) else None
    if not isinstance(overall, dict):
        raise StepError(f"GET /v1/reconciliation/summary answered without overall: {summary!r}")
    findings.local = local_total(api, state, findings.period_start, findings.period_end)
    findings.stripe_reconciled = as_decimal(overall.get("stripe"), "summary overall.stripe")
    findings.drift_abs = as_decimal(overall.get("drift_abs"), "summary overall.drift_abs")
    findings.drift_pct = as_decimal(overall.get("drift_pct"), "summary overall.drift_pct")
    epsilon = env.settings.RECONCILIATION_EPSILON

    if not within_tolerance(drift(findings.local, findings.quantity), epsilon):
        findings.problems.append(
            f"invoice quantity {fmt(findings.quantity)} != ledger {fmt(findings.local)} "
            f"(drift {fmt(findings.quantity - findings.local)})"
        )
    overall_drift = absolute_drift(findings.drift_abs, findings.stripe_reconciled)
    if not within_tolerance(overall_drift, epsilon):
        findings.problems.append(
            f"reconciliation drift: ledger {fmt(as_decimal(overall.get('local'), 'local'))} vs "
            f"Stripe {fmt(findings.stripe_reconciled)}, drift_abs {fmt(findings.drift_abs)}, "
            f"drift_pct {fmt(findings.drift_pct)} > epsilon {epsilon}"
        )
    document = {"summary": summary, "invoice": invoice, "state": state.to_json()}
    for expression, program in zip(asserts, programs, strict=True):
        outcome = _evaluate(expression, program, document)
        if outcome is not None:
            findings.problems.append(outcome)
    return findings, summary


def _compile(expression: str) -> Any:
    try:
        return jq.compile(expression)
    except ValueError as exc:
        raise StepError(f"--assert {expression!r} is not a valid jq program: {exc}") from None


def _evaluate(expression: str, program: Any, document: Any) -> str | None:
    """None when the jq program yields only truthy values, else why the assertion failed."""
    try:
        results = program.input_value(document).all()
    except ValueError as exc:
        raise StepError(f"--assert {expression!r} failed to run: {exc}") from None
    if results and all(value not in (None, False) for value in results):
        return None
    shown = json.dumps(results[0] if len(results) == 1 else results)
    return f"assertion failed: {expression} (gave {shown})"


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
    lines = client.v1.invoices.line_items.list(invoice_id, {"limit": 100}).auto_paging_iter()
    document: dict[str, Any] = to_plain(invoice)
    document["lines"] = {
        "object": "list",
        "data": [to_plain(line) for line in lines],
        "has_more": False,
        "url": f"/v1/invoices/{invoice_id}/lines",
    }
    return document


def _price_line(invoice: dict[str, Any], state: DemoState) -> dict[str, Any]:
    for line in invoice["lines"]["data"]:
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
        if price == state.priceId:
            return dict(line)
    raise StepError(f"invoice {invoice['id']} has no line for the mapped price {state.priceId}")


def _print_verdict(findings: Findings, parity: bool, epsilon: Decimal) -> None:
    print(
        f"invoice {findings.invoice_id} for the period "
        f"{iso(findings.period_start)} .. {iso(findings.period_end)}"
    )
    rows = [
        ("ledger total (local)", fmt(findings.local)),
        ("invoice quantity", fmt(findings.quantity)),
        ("invoice amount", f"{findings.amount} {findings.currency}"),
        ("Stripe (reconciled)", fmt(findings.stripe_reconciled)),
        (
            "drift",
            f"{fmt(findings.drift_abs)} (drift_pct {fmt(findings.drift_pct)}, epsilon {epsilon})",
        ),
        ("invoice status", findings.invoice_status),
    ]
    for label, value in rows:
        print(f"  {label:<22} {value}")
    for problem in findings.problems:
        print(f"  DRIFT: {problem}")
    facts = (
        f"local {fmt(findings.local)}, invoice quantity {fmt(findings.quantity)}, "
        f"amount {findings.amount}, drift {fmt(findings.drift_abs)}, "
        f"invoice {findings.invoice_status}"
    )
    if parity:
        print(f"verdict: PARITY: {facts}")
    else:
        print(f"verdict: DRIFT: {facts}; {'; '.join(findings.problems)}")


if __name__ == "__main__":
    main("validate", run)
