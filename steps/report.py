"""Step: the parity report of the last demo or scenarios run, as one page.

    python -m steps.report [--source auto|demo|scenarios]

Writes `DEMO_STATE_DIR/report.json` and `DEMO_STATE_DIR/report.html`
(`stripemeter.report`). The sections come from the service's PostgreSQL, as
`stripemeter report` builds them for any tenant: the demo's tenant (`.state.json`) or
each scenario's (`scenarios.json`). What only the run knows is added on top: the
invoice amounts and each period's verdict as `validate` judged it (the last line of
`validate.log`, when it is this tenant's) or as the scenarios' matrix did, and the
run's overall verdict. `--source auto` takes whichever of `validate.log` and
`scenarios.json` is newer. Without `DATABASE_URL` it reads the running embedded
PostgreSQL, or starts it for the read and stops it again. Exit 0 when written (the
verdict is in the page; validate and scenario give the exit codes), 1 when there is
nothing to report on (no state).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steps._env import StepEnv, StepError, load_env, main, parser
from steps._state import VALIDATE_LOG, DemoState, load_state, read_json
from stripemeter.db import connect, database_url, embedded
from stripemeter.db.migrate import require_current_schema
from stripemeter.jsonio import iso
from stripemeter.report.collect import tenant_sections
from stripemeter.report.model import (
    DRIFT,
    ERROR,
    PARITY,
    PENDING,
    Report,
    Section,
    overall_verdict,
)
from stripemeter.report.render import write_report

SCENARIOS_FILE = "scenarios.json"  # steps.scenario.RESULT_FILE, without its imports
# validate's and the matrix's statuses, as the report's verdicts.
VERDICTS = {"parity": PARITY, "resolved": PARITY, "pending": PENDING, "drift": DRIFT}


def run(argv: Sequence[str]) -> int:
    """Build the report of the chosen run and write it next to the run's files."""
    args = parser("report", "Write report.html and report.json of the last run.")
    args.add_argument("--source", choices=("auto", "demo", "scenarios"), default="auto")
    options = args.parse_args(argv)
    env = load_env()
    env.stripe_target()  # like every step: a live key is refused before anything runs
    source = _source(env.state_dir) if options.source == "auto" else options.source
    # The run's files first: a missing one is named before any database is started.
    if source == "scenarios":
        document = read_json(
            env.state_dir / SCENARIOS_FILE, "scenarios result", "run `invoke scenarios` first"
        )
        if not isinstance(document, dict):
            raise StepError(
                f"{env.state_dir / SCENARIOS_FILE} is not a JSON object; run `invoke scenarios`"
            )
        with _database(env) as db_url:
            report = _scenarios_report(env, db_url, document)
    else:
        state = load_state(env.state_dir, require_complete=False)
        with _database(env) as db_url:
            report = _demo_report(env, db_url, state)
    json_path, html_path = write_report(report, env.state_dir)
    print(f"verdict: {report.verdict.upper()}: {len(report.sections)} period(s) in the report")
    print(f"json: {json_path}")
    print(f"html: {html_path}")
    return 0


def _source(state_dir: Path) -> str:
    """The newer of the demo's validate.log and the scenarios' result (the demo when
    neither exists: its state names what to run)."""
    demo, scenarios = state_dir / VALIDATE_LOG, state_dir / SCENARIOS_FILE
    if not scenarios.exists():
        return "demo"
    if not demo.exists():
        return "scenarios"
    return "scenarios" if scenarios.stat().st_mtime > demo.stat().st_mtime else "demo"


def _sections(env: StepEnv, db_url: str, tenant_id: str) -> list[Section]:
    with connect(db_url) as conn:
        require_current_schema(conn)
        return tenant_sections(conn, tenant_id, env.settings.RECONCILIATION_EPSILON)


@contextmanager
def _database(env: StepEnv) -> Iterator[str]:
    """`DATABASE_URL`, else the running embedded server, else one started for this step
    alone and stopped again (`invoke report` after `invoke down` leaves nothing up)."""
    settings = env.settings
    running = settings.DATABASE_URL or embedded.running_url(settings)
    if running:
        yield running
        return
    try:
        yield database_url(settings)
    finally:
        embedded.stop(settings)


def _last_validation(state_dir: Path) -> dict[str, Any] | None:
    """The last line of validate.log, or None (no file, empty, unreadable)."""
    try:
        lines = (state_dir / VALIDATE_LOG).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        return record if isinstance(record, dict) else None
    return None


def _demo_report(env: StepEnv, db_url: str, state: DemoState) -> Report:
    sections = _sections(env, db_url, state.tenantId)
    notes = [f"demo tenant {state.tenantId}, test clock {state.testClockId}"]
    record = _last_validation(env.state_dir)
    if record is None or record.get("tenantId") != state.tenantId:
        notes.append("validate has not run for this tenant: verdicts are the reconciler's")
        verdict = overall_verdict(sections)
    else:
        invoices = record.get("invoices") or []
        checks = {(c.get("customerRef"), c.get("periodStart")): c for c in invoices}
        for section in sections:
            check = checks.get((section.customer_ref, iso(section.period_start)))
            if check is None:
                continue
            section.invoice_amount = check.get("invoiceAmount")
            section.currency = check.get("currency")
            section.verdict = VERDICTS.get(str(check.get("status")), section.verdict)
            section.cause = check.get("cause") or section.cause
        verdict = VERDICTS.get(str(record.get("verdict")), ERROR)
        notes.append(f"verdict of validate at {record.get('at')}")
        notes += [f"problem: {p}" for p in record.get("problems") or []]
    return Report(
        title="Parity report: the demo",
        source="demo",
        generated_at=datetime.now(UTC).replace(microsecond=0),
        epsilon=env.settings.RECONCILIATION_EPSILON,
        sections=sections,
        verdict=verdict,
        notes=notes,
    )


def _scenarios_report(env: StepEnv, db_url: str, document: dict[str, Any]) -> Report:
    sections: list[Section] = []
    notes: list[str] = []
    for result in document.get("scenarios") or []:
        name = str(result.get("name"))
        found = _sections(env, db_url, str(result.get("tenantId")))
        cells = {(c.get("customer"), c.get("periodStart")): c for c in result.get("cells") or []}
        for section in found:
            section.title = f"{name}: {section.title}"
            cell = cells.get((section.customer_ref, iso(section.period_start)))
            if cell is None:
                continue
            billed = cell.get("stripe") or {}
            section.invoice_amount = billed.get("amount")
            # the matrix has no currency; a correction of the period bills in the invoice's
            section.currency = next((c.currency for c in section.corrections), None)
            section.verdict = VERDICTS.get(str(cell.get("verdict")), section.verdict)
            section.cause = "; ".join(cell.get("problems") or []) or section.cause
        sections += found
        notes.append(f"scenario {name}: {str(result.get('verdict')).upper()}")
        if result.get("error"):
            notes.append(f"scenario {name} could not run: {result['error']}")
    return Report(
        title="Parity report: the scenarios",
        source="scenarios",
        generated_at=datetime.now(UTC).replace(microsecond=0),
        epsilon=env.settings.RECONCILIATION_EPSILON,
        sections=sections,
        verdict=VERDICTS.get(str(document.get("verdict")), ERROR),
        notes=notes,
    )


if __name__ == "__main__":
    main("report", run)
