"""`stripemeter report --tenant T --period YYYY-MM [--out DIR]`: the parity report of
any tenant, from the service's own database (no demo state, no Stripe call).

Bad arguments (tenant id, period) and a tenant without reconciliation data for the
period are one `error: ...` line and exit 2; the written paths are printed, the page's
last.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stripemeter.config import Settings
from stripemeter.errors import ReportError
from stripemeter.report.model import Report, overall_verdict
from stripemeter.report.render import write_report

EXIT_BAD_INPUT = 2


def add_parser(sub: Any, tenant: Any, month: Any) -> None:
    """Register `report` on the CLI's subparsers; `tenant`/`month` are the CLI's own
    argument types (one definition of a valid tenant id and month)."""
    report = sub.add_parser(
        "report",
        help="a tenant's parity report (report.html + report.json) for a month",
        description="Write report.html and report.json: per billing period starting in the "
        "month, the hourly ledger beside what was sent to Stripe, the invoice line, the "
        "corrections and the drift, from this service's database. Exit 2 on bad input or "
        "when the tenant has no reconciliation report there.",
    )
    report.add_argument("--tenant", type=tenant, required=True, help="tenant id (a name or a UUID)")
    report.add_argument(
        "--period",
        type=month,
        required=True,
        metavar="YYYY-MM",
        help="the billing periods starting in this month",
    )
    report.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="where to write (default: .)"
    )
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Build the tenant's report for the month and write it; exit 2 when there is none."""
    from stripemeter.db import connect, database_url
    from stripemeter.db.migrate import require_current_schema
    from stripemeter.periods import parse_month
    from stripemeter.report.collect import tenant_sections
    from stripemeter.tenants import check_tenant_id

    try:
        tenant = check_tenant_id(
            args.tenant, strict_uuid=settings.STRICT_TENANT_ID_UUID, field="--tenant"
        )
        window = parse_month(args.period, "--period")
        with connect(database_url(settings)) as conn:
            require_current_schema(conn)
            sections = tenant_sections(conn, tenant, settings.RECONCILIATION_EPSILON, window)
        if not sections:
            raise ReportError(
                f"no reconciliation report for tenant {args.tenant} with a period starting in "
                f"{args.period}: check --tenant and --period (`stripemeter summary --tenant "
                f"{args.tenant}` shows its month)"
            )
        report = Report(
            title=f"Parity report: tenant {args.tenant}, {args.period}",
            source="service",
            generated_at=datetime.now(UTC).replace(microsecond=0),
            epsilon=settings.RECONCILIATION_EPSILON,
            sections=sections,
            notes=[
                "invoice amounts are not stored by the service; see each invoice in Stripe",
            ],
        )
        report.verdict = overall_verdict(sections)
        json_path, html_path = write_report(report, args.out)
    except (ReportError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"verdict: {report.verdict.upper()}: {len(sections)} period(s)")
    print(f"json: {json_path}")
    print(f"report: {html_path}")
    return 0
