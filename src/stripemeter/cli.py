"""The `stripemeter` command: database, migrations, API, workers, API keys, backfill.

    stripemeter db start|stop|url
    stripemeter migrate
    stripemeter api [--host 127.0.0.1] [--port 3000] [--no-workers] [--no-migrate]
                    [--insecure-bypass-auth-anywhere] [--workers-processes N|auto] [--live]
    stripemeter workers [--live]
    stripemeter api-keys create --tenant ID [--name NAME] [--scope ingest|read|admin]...
    stripemeter api-keys list --tenant ID [--json]
    stripemeter api-keys revoke ID
    stripemeter bindings put --tenant ID --customer-ref REF --stripe-customer cus_...
                             [--no-verify]
    stripemeter reconcile --tenant ID [--period YYYY-MM] [--live]
    stripemeter summary --tenant ID [--json]
    stripemeter corrections list --tenant ID [--status proposed|applied|superseded] [--json]
    stripemeter corrections apply --tenant ID (--id ID | --all) [--dry-run] [--live]
    stripemeter backfill FILE [--format jsonl|csv] [--batch-size N] [--dry-run]
                         [--checkpoint PATH] [--restart] [--tenant ID] [--progress]
                         [--rejects FILE] [--json]
    stripemeter webhooks setup --url URL
    stripemeter report --tenant ID --period YYYY-MM [--out DIR]
    stripemeter --version

Every command and action has its own `--help` (a description and each argument's help).
Expected failures print one `error: ...` line and exit non-zero, no traceback: `main`
catches `StripemeterError` (bad configuration, database unreachable, embedded server
broken, schema behind, Stripe refusing...) once; bad arguments are argparse's exit 2
(exit 1 for `reconcile`, whose 2 means drift).
Anything else is a bug and keeps its traceback.

`api` serves with a 64 KiB request-header limit, by default in one server process per
usable CPU (`--workers-processes auto`; `1` serves in the command's own process); with
N > 1 the N server processes stop when the supervisor dies, even by SIGKILL (see
`serving`).

Live mode: `--live` (or `STRIPEMETER_LIVE=1`) is the only way the service accepts a
live Stripe key (`sk_live_`/`rk_live_`), and then only a live key; `api` and `workers`
log the mode they run in at start-up (see `stripemeter.stripe.client`).

`reconcile` runs a reconciliation of one tenant now and prints one line per report:
exit 0 on parity, 2 on drift, 1 on error (nothing to compare included). `summary`
prints the tenant's month so far: usage per metric, pending pushes, the last verdict.

`corrections list` prints the tenant's corrections after close (one line each, or a JSON
`{"data": [...]}`); `corrections apply` creates the invoice item or credit note of one
(`--id`) or every proposed (`--all`) correction in Stripe, each exactly once (applying an
applied one changes nothing), and prints what it applied; `--dry-run` only prints.

`api` applies pending migrations before serving (they are idempotent and serialised
by an advisory lock, so several API processes starting together is safe); with
`--no-migrate` it refuses to start while migrations are pending instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stripemeter import package_version
from stripemeter.auth import (
    DEFAULT_SCOPES,
    check_bypass_allowed,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from stripemeter.config import Settings, load_settings
from stripemeter.db import connect, database_url, embedded
from stripemeter.db.migrate import apply_migrations, require_current_schema
from stripemeter.errors import (
    CliError,
    InputError,
    ReportError,
    StripeConfigError,
    StripemeterError,
    UnknownApiKey,
)
from stripemeter.periods import parse_month
from stripemeter.stripe.client import StripeTarget, service_target
from stripemeter.tenants import check_tenant_id

log = logging.getLogger("stripemeter.cli")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _processes(text: str) -> int:
    """`auto` (one server process per usable CPU) or a whole number of at least 1."""
    if text.strip().lower() == "auto":
        return usable_cpus()
    try:
        return _positive(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; use a number or 'auto'") from None


def _tenant(text: str) -> str:
    """`--tenant`: a tenant id in canonical form (`stripemeter.tenants`).

    STRICT_TENANT_ID_UUID is checked where the settings are known (`_strict_tenant`).
    """
    try:
        return check_tenant_id(text, field="--tenant")
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _strict_tenant(tenant: str, settings: Settings) -> str:
    """`tenant`, refused with CliError when STRICT_TENANT_ID_UUID wants a UUID."""
    try:
        return check_tenant_id(tenant, strict_uuid=settings.STRICT_TENANT_ID_UUID, field="--tenant")
    except InputError as exc:
        raise CliError(exc.message) from None


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    """`db start|stop|url`: manage the embedded PostgreSQL (or show DATABASE_URL)."""
    if settings.DATABASE_URL:
        if args.action == "url":
            print(settings.DATABASE_URL)
            return 0
        print(f"DATABASE_URL is set: there is no embedded server to {args.action}")
        return 0
    if args.action in ("start", "url"):
        url = embedded.start(settings)
        print(url if args.action == "url" else f"embedded PostgreSQL running: {url}")
        return 0
    stopped = embedded.stop(settings)
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """`migrate`: apply pending migrations and say which."""
    with connect(database_url(settings)) as conn:
        applied = apply_migrations(conn)
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return 0


def _start_workers(settings: Settings, url: str) -> Any:
    from stripemeter.workers import loop as workers

    return workers.start_in_background(settings, url)


def announce_stripe(target: StripeTarget) -> None:
    """Say at start-up which Stripe the service uses, loudly when live keys leave for
    an address other than Stripe's."""
    log.info("%s", target.describe())
    if target.warning:
        log.warning("%s", target.warning)


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """`api`: serve the HTTP API (and, unless --no-workers, the background workers)."""
    import uvicorn

    from stripemeter.api import serving
    from stripemeter.api.app import create_app

    check_bypass_allowed(
        settings.BYPASS_AUTH, args.host, insecure_anywhere=args.insecure_bypass_auth_anywhere
    )
    target = None
    if not args.no_workers:
        # Refuse a key the mode does not allow before starting anything (the workers need it).
        target = service_target(settings)
    url = database_url(settings)
    with connect(url) as conn:
        if args.no_migrate:
            require_current_schema(conn)
        else:
            applied = apply_migrations(conn)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
    if target is not None:
        announce_stripe(target)
    else:
        try:
            announce_stripe(service_target(settings))
        except StripeConfigError as exc:  # --no-workers: only Stripe-backed routes need it
            log.warning("Stripe: refused (%s)", exc)
    if settings.BYPASS_AUTH:
        log.warning("BYPASS_AUTH is on: no API key is needed (listening on %s)", args.host)
    background = None if args.no_workers else _start_workers(settings, url)
    options = serving.server_options()
    try:
        if args.workers_processes and args.workers_processes > 1:
            from stripemeter.config import export_to_child_processes

            # Each server process reads its settings anew; the children watch this pid
            # and stop when it is gone (kill -9 included).
            export_to_child_processes(
                {
                    "DATABASE_URL": url,
                    serving.SUPERVISOR_PID_ENV: str(os.getpid()),
                    "STRIPEMETER_LIVE": "1" if settings.STRIPEMETER_LIVE else "0",
                }
            )
            uvicorn.run(
                "stripemeter.api.serving:create_child_app",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers_processes,
                **options,
            )
        else:
            app = create_app(settings, db_url=url, freeze_startup_heap=True)
            uvicorn.run(app, host=args.host, port=args.port, **options)
    finally:
        if background is not None:
            background.stop()
    return 0


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    """`workers`: run the writer and reconciler loops in the foreground."""
    from stripemeter.workers import loop as workers

    workers.run_forever(settings)
    return 0


def cmd_api_keys(args: argparse.Namespace, settings: Settings) -> int:
    """`api-keys create`: make a key for a tenant; print the secret once (stdout).

    Scopes default to ingest + read; admin (mappings, bindings, reconciliation runs)
    only when asked for with `--scope admin`.
    """
    scopes = args.scope or list(DEFAULT_SCOPES)
    tenant = _strict_tenant(args.tenant, settings)
    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        created = create_api_key(conn, tenant, args.name, scopes=scopes)
    print(
        f"created API key {created.id} for tenant {created.tenant_id} with scopes "
        f"{', '.join(sorted(created.scopes))}; the secret below is shown only once",
        file=sys.stderr,
    )
    print(created.secret)
    return 0


def cmd_api_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    """`api-keys list`: the tenant's keys, one line each (id, prefix, created, revoked),
    or `{"data": [...]}`; the secret is never stored, so never shown."""
    import json

    tenant = _strict_tenant(args.tenant, settings)
    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        keys = list_api_keys(conn, tenant)
    if args.json:
        print(json.dumps({"data": [key.to_json() for key in keys]}, sort_keys=True))
        return 0
    for key in keys:
        revoked = "revoked " + key.revoked_at.isoformat() if key.revoked_at else "active"
        print(
            f"{key.id} {key.prefix}... created {key.created_at.isoformat()} {revoked}"
            f" scopes {','.join(sorted(key.scopes))} name {key.name or '-'}"
        )
    print(f"{len(keys)} API key(s) for tenant {tenant}", file=sys.stderr)
    return 0


EXIT_UNKNOWN_KEY = 2


def cmd_api_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """`api-keys revoke ID`: the key stops working at once on every API process
    listening (`auth.RevocationListener`). Exit 2 for an id no key has; revoking a
    revoked key says so and exits 0."""
    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        try:
            key, revoked = revoke_api_key(conn, args.id)
        except UnknownApiKey as exc:
            print(error_line(exc), file=sys.stderr)
            return EXIT_UNKNOWN_KEY
    if revoked:
        print(f"revoked API key {key.id} ({key.prefix}...) of tenant {key.tenant_id}")
    else:
        assert key.revoked_at is not None
        print(
            f"API key {key.id} ({key.prefix}...) of tenant {key.tenant_id} was already "
            f"revoked at {key.revoked_at.isoformat()}; nothing changed"
        )
    return 0


def _key_id(text: str) -> Any:
    """An API key id (a UUID, as `api-keys create` and `api-keys list` print it)."""
    import uuid

    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an API key id: {text!r} (a UUID, as `api-keys list --tenant ID` prints)"
        ) from None


def cmd_bindings(args: argparse.Namespace, settings: Settings) -> int:
    """`bindings put`: bind a tenant's customerRef to a Stripe customer (operator work).

    Stripe is asked first that the customer exists (as the API does); `--no-verify`
    skips that for an operator who knows better, leaving `verified_at` empty.
    """
    from stripemeter.mappings import bindings
    from stripemeter.stripe.client import gateway_from_settings
    from stripemeter.stripe.gateway import RetryPolicy

    tenant = _strict_tenant(args.tenant, settings)
    if not re.fullmatch(r"cus_[A-Za-z0-9_]{1,251}", args.stripe_customer):
        raise CliError(
            "--stripe-customer must be a Stripe customer id (cus_...), "
            f"got {args.stripe_customer!r}"
        )
    if not 1 <= len(args.customer_ref) <= 255 or not args.customer_ref.isprintable():
        raise CliError("--customer-ref must be 1-255 printable characters")
    clock = None
    if not args.no_verify:
        # An operator waits: few retries. Unknown customer or Stripe down: `main`'s line.
        gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=2))
        clock = bindings.verify_customer(gateway, args.stripe_customer)
    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        created = bindings.bind(
            conn,
            tenant,
            args.customer_ref,
            args.stripe_customer,
            verified=not args.no_verify,
            clock=clock,
        )
        conn.commit()
    print(
        f"{'bound' if created else 'rebound'} customerRef {args.customer_ref!r} of tenant "
        f"{tenant} to {args.stripe_customer}"
        + ("" if not args.no_verify else " (not verified with Stripe)"),
        file=sys.stderr,
    )
    return 0


BACKFILL_EXIT_REJECTED = 3


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """`backfill FILE`: load history through the ingest path, exactly once (see `backfill`).

    Exit 0 when every line was accepted or a duplicate, 3 when some were rejected, 1
    when the run stopped (the checkpoint then says where to resume).
    """
    import json
    from pathlib import Path

    from stripemeter.backfill import readers
    from stripemeter.backfill.checkpoint import SUFFIX
    from stripemeter.backfill.run import Options, Run, write_rejects
    from stripemeter.db.pool import open_pool
    from stripemeter.ingest.validation import EventRules

    batch_size = args.batch_size or min(1000, settings.MAX_INGEST_BATCH)
    if batch_size > settings.MAX_INGEST_BATCH:
        raise CliError(
            f"--batch-size {batch_size} is over MAX_INGEST_BATCH ({settings.MAX_INGEST_BATCH}); "
            "pass a smaller one"
        )
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file} is not a file; pass the JSON-lines or CSV file to load")
    options = Options(
        path=path,
        format=args.format or readers.format_of(args.file),
        batch_size=batch_size,
        checkpoint_path=Path(args.checkpoint or args.file + SUFFIX),
        dry_run=args.dry_run,
        restart=args.restart,
        tenant=args.tenant,
        progress=args.progress or sys.stderr.isatty(),
        rules=EventRules.from_settings(settings),
    )
    url = database_url(settings)
    with connect(url) as conn:
        require_current_schema(conn)
    pool = open_pool(url, max_size=1, min_size=1, wait=True, name="backfill")
    run = Run(options, pool)
    try:
        summary = run.execute()
    except KeyboardInterrupt:
        where = run.summary.last_line
        print(
            f"backfill interrupted after line {where:,}"
            + ("" if options.dry_run else "; run the same command again to resume"),
            file=sys.stderr,
        )
        return 130
    finally:
        pool.close()
    if args.rejects:
        write_rejects(Path(args.rejects), summary)
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        print(summary.render(args.rejects))
    return BACKFILL_EXIT_REJECTED if summary.rejected else 0


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    """`webhooks setup`: register `--url` on the configured Stripe for the events the
    service handles; print the `whsec_` secret once, as the `.env` line to add. An
    endpoint already registered for the URL is reported, not duplicated."""
    from urllib.parse import urlsplit

    from stripemeter.stripe.client import gateway_from_settings
    from stripemeter.stripe.gateway import RetryPolicy
    from stripemeter.stripe.webhooks import register_endpoint

    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(
            f"--url must be an http(s) URL such as https://host/v1/stripe/webhooks, "
            f"got {args.url!r}"
        )
    gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=2))
    endpoint, created = register_endpoint(gateway, args.url)
    events = ", ".join(endpoint.enabled_events)
    if not created:
        print(
            f"webhook endpoint {endpoint.id} already exists for {endpoint.url} "
            f"({endpoint.status}; events: {events}); nothing created. Stripe shows its "
            "secret only on creation: delete it in Stripe to get a new one",
            file=sys.stderr,
        )
        return 0
    print(
        f"created webhook endpoint {endpoint.id} for {endpoint.url} (events: {events}); "
        "put the line below in .env (the secret is shown only once)",
        file=sys.stderr,
    )
    print(f"STRIPE_WEBHOOK_SECRET={endpoint.secret}")
    return 0


def _live_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--live",
        action="store_true",
        help="live mode: accept only a live Stripe key (sk_live_/rk_live_); "
        "the same as STRIPEMETER_LIVE=1",
    )


EXIT_DRIFT = 2


def _month(text: str) -> str:
    """A month as YYYY-MM (checked here, turned into its instants by the command)."""
    try:
        parse_month(text, "--period")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


EXIT_NO_REPORT = 2


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """`report`: the tenant's parity report for the month (`stripemeter.report`), from this
    service's database; exit 2 for a tenant refused or without a report there."""
    from stripemeter.report.collect import tenant_sections
    from stripemeter.report.model import Report, overall_verdict
    from stripemeter.report.render import write_report

    try:
        tenant = _strict_tenant(args.tenant, settings)
        with connect(database_url(settings)) as conn:
            require_current_schema(conn)
            sections = tenant_sections(
                conn,
                tenant,
                settings.RECONCILIATION_EPSILON,
                parse_month(args.period, "--period"),
            )
        if not sections:
            raise ReportError(
                f"no reconciliation report for tenant {args.tenant} with a period starting in "
                f"{args.period}: check --tenant and --period (`stripemeter summary --tenant "
                f"{args.tenant}` shows its month)"
            )
    except (CliError, ReportError) as exc:
        print(error_line(exc), file=sys.stderr)
        return EXIT_NO_REPORT
    report = Report(
        title=f"Parity report: tenant {args.tenant}, {args.period}",
        source="service",
        generated_at=datetime.now(UTC).replace(microsecond=0),
        epsilon=settings.RECONCILIATION_EPSILON,
        sections=sections,
        verdict=overall_verdict(sections),
        notes=["invoice amounts are not stored by the service; see each invoice in Stripe"],
    )
    json_path, html_path = write_report(report, args.out)
    print(f"verdict: {report.verdict.upper()}: {len(sections)} period(s)")
    print(f"json: {json_path}")
    print(f"report: {html_path}")
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """`reconcile`: reconcile one tenant now; one line per report; 0 parity, 2 drift."""
    from stripemeter.ops import operator
    from stripemeter.stripe.client import gateway_from_settings
    from stripemeter.stripe.gateway import RetryPolicy

    # An operator waits: a few retries, then Stripe's failure as `main`'s one line.
    gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=3))
    period = parse_month(args.period, "--period") if args.period else None
    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        reports = operator.reconcile_tenant(conn, gateway, settings, args.tenant, period)
    where = f" with a period starting in {args.period}" if args.period else ""
    if not reports:
        raise CliError(
            f"no reconciliation report for tenant {args.tenant}{where}: it has no active "
            "mapping with a bound, subscribed customer there (see GET /v1/mappings)"
        )
    for report in reports:
        print(operator.report_line(report, settings.RECONCILIATION_EPSILON))
    judged = operator.verdict(reports)
    print(f"{judged}: {len(reports)} report(s) for tenant {args.tenant}{where}", file=sys.stderr)
    return 0 if judged == "parity" else EXIT_DRIFT


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    """`summary`: the tenant's month so far (usage, pending pushes, last verdict)."""
    import json

    from stripemeter.ops import operator

    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        summary = operator.tenant_summary(conn, args.tenant, datetime.now(UTC))
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print("\n".join(operator.summary_lines(summary)))
    return 0


def _correction_line(correction: Any) -> str:
    """One line of `corrections list|apply`."""
    body = correction.to_json()
    where = body["stripeObjectId"] or "-"
    return (
        f"{body['id']} {body['status']} {body['kind']} {body['metric']} {body['customerRef']}"
        f" {body['periodStart']}..{body['periodEnd']}: {body['quantity']} unit(s),"
        f" {body['amount']} {body['currency']}, invoice {body['invoiceId']}, stripe {where}"
    )


def cmd_corrections(args: argparse.Namespace, settings: Settings) -> int:
    """`corrections list|apply`: the tenant's corrections after close; apply them."""
    import json

    from stripemeter.corrections.apply import apply_all, apply_correction
    from stripemeter.corrections.store import list_corrections
    from stripemeter.stripe.client import gateway_from_settings
    from stripemeter.stripe.gateway import RetryPolicy

    tenant = _strict_tenant(args.tenant, settings)
    with connect(database_url(settings)) as conn:
        require_current_schema(conn)
        if args.corrections_command == "list":
            found = list_corrections(conn, tenant, args.status)
            if args.json:
                print(json.dumps({"data": [c.to_json() for c in found]}, sort_keys=True))
            else:
                for correction in found:
                    print(_correction_line(correction))
                print(f"{len(found)} correction(s) for tenant {tenant}", file=sys.stderr)
            return 0
        # An operator waits: a few retries, then Stripe's failure as `main`'s one line.
        gateway = (
            None if args.dry_run else gateway_from_settings(settings, retry=RetryPolicy(attempts=3))
        )
        if args.all:
            done = apply_all(conn, gateway, tenant, dry_run=args.dry_run)
        else:
            one = apply_correction(conn, gateway, args.id, tenant_id=tenant, dry_run=args.dry_run)
            done = [one]
    verb = "would apply" if args.dry_run else "applied"
    for correction in done:
        print(_correction_line(correction))
    print(f"{verb} {len(done)} correction(s) for tenant {tenant}", file=sys.stderr)
    return 0


def _correction_id(text: str) -> Any:
    """A correction id (a UUID, as `corrections list` prints it)."""
    import uuid

    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a correction id: {text!r} (a UUID, as `corrections list` prints)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="stripemeter", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=f"stripemeter {package_version()}",
        help="print the installed version and exit",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (COMMAND --help)"
    )

    db = sub.add_parser("db", help="manage the embedded PostgreSQL")
    db.add_argument(
        "action",
        choices=("start", "stop", "url"),
        help="start it (printing its URL), stop it, or print its URL (starting it if needed); "
        "with DATABASE_URL set, url prints that and start/stop do nothing",
    )
    db.set_defaults(handler=cmd_db)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=cmd_migrate)

    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--port", type=_port, default=3000, help="TCP port (default 3000)")
    api.add_argument("--no-workers", action="store_true", help="do not run background workers")
    api.add_argument(
        "--no-migrate", action="store_true", help="refuse to start if migrations are pending"
    )
    api.add_argument(
        "--insecure-bypass-auth-anywhere",
        action="store_true",
        help="allow BYPASS_AUTH=1 on a non-loopback address",
    )
    api.add_argument(
        "--workers-processes",
        type=_processes,
        default="auto",
        metavar="N|auto",
        help="HTTP server processes (default auto: one per usable CPU, "
        f"{usable_cpus()} here); each has its own pool and ingest group committer",
    )
    _live_option(api)
    api.set_defaults(handler=cmd_api)

    workers = sub.add_parser("workers", help="run the writer and reconciler loops")
    _live_option(workers)
    workers.set_defaults(handler=cmd_workers)

    keys = sub.add_parser("api-keys", help="manage API keys")
    keys_sub = keys.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", help="create, list or revoke"
    )
    create = keys_sub.add_parser("create", help="create a key for a tenant")
    create.add_argument(
        "--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)"
    )
    create.add_argument("--name", default=None, help="label for the key")
    create.add_argument(
        "--scope",
        action="append",
        choices=("ingest", "read", "admin"),
        help="a scope to grant; repeat for several (default: ingest and read)",
    )
    create.set_defaults(handler=cmd_api_keys)
    keys_list = keys_sub.add_parser(
        "list", help="a tenant's keys: id, prefix, created, revoked (never the secret)"
    )
    keys_list.add_argument(
        "--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)"
    )
    keys_list.add_argument("--json", action="store_true", help='one JSON {"data": [...]} object')
    keys_list.set_defaults(handler=cmd_api_keys_list)
    revoke = keys_sub.add_parser(
        "revoke", help="revoke a key: the API refuses it (401) from then on (exit 2: no such id)"
    )
    revoke.add_argument(
        "id", type=_key_id, metavar="ID", help="the key's id, as `api-keys list` prints it"
    )
    revoke.set_defaults(handler=cmd_api_keys_revoke)

    binds = sub.add_parser("bindings", help="bind customerRefs to Stripe customers")
    binds_sub = binds.add_subparsers(
        dest="bindings_command", required=True, metavar="ACTION", help="put"
    )
    put = binds_sub.add_parser("put", help="bind a tenant's customerRef to a Stripe customer")
    put.add_argument("--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)")
    put.add_argument("--customer-ref", required=True, help="the customerRef events carry")
    put.add_argument("--stripe-customer", required=True, help="Stripe customer id (cus_...)")
    put.add_argument(
        "--no-verify", action="store_true", help="do not ask Stripe that the customer exists"
    )
    put.set_defaults(handler=cmd_bindings)

    backfill = sub.add_parser(
        "backfill",
        help="load usage history from a JSON-lines or CSV file, exactly once",
        description="Load usage events from FILE (JSON lines, or CSV whose header names the "
        "ingest fields) through the same validation and exactly-once ledger as "
        "POST /v1/events/ingest: a rerun, or a line also sent to the API, is a duplicate. "
        "A rejected line never stops the others. Exit status: 0 every line accepted or a "
        f"duplicate; {BACKFILL_EXIT_REJECTED} some lines rejected (listed in the summary); "
        "1 the run stopped (rerun to resume from the checkpoint); 2 bad arguments.",
    )
    backfill.add_argument("file", metavar="FILE", help="the file of events to load")
    backfill.add_argument(
        "--format", choices=("jsonl", "csv"), help="file format (default: from the extension)"
    )
    backfill.add_argument(
        "--batch-size",
        type=_positive,
        default=None,
        metavar="N",
        help="events per stored batch (default 1000, at most MAX_INGEST_BATCH)",
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="validate and count; write nothing"
    )
    backfill.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="where progress is recorded after each batch (default FILE.stripemeter-checkpoint)",
    )
    backfill.add_argument(
        "--restart",
        action="store_true",
        help="ignore an existing checkpoint and read the file from its start",
    )
    backfill.add_argument(
        "--tenant", type=_tenant, help="accept only lines of this tenant (others rejected)"
    )
    backfill.add_argument(
        "--progress", action="store_true", help="show progress on stderr even if not a terminal"
    )
    backfill.add_argument(
        "--rejects", metavar="FILE", help="write every rejected line as JSON lines to FILE"
    )
    backfill.add_argument("--json", action="store_true", help="print the summary as JSON")
    backfill.set_defaults(handler=cmd_backfill)
    hooks = sub.add_parser("webhooks", help="Stripe webhook endpoint")
    hooks_sub = hooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION", help="setup"
    )
    setup = hooks_sub.add_parser("setup", help="register the webhook endpoint with Stripe")
    setup.add_argument("--url", required=True, help="the public URL of POST /v1/stripe/webhooks")
    setup.set_defaults(handler=cmd_webhooks)

    rec = sub.add_parser("reconcile", help="reconcile one tenant now (exit 0 parity, 2 drift)")
    rec.add_argument("--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)")
    rec.add_argument(
        "--period",
        type=_month,
        default=None,
        metavar="YYYY-MM",
        help="only the reports of periods starting in this month",
    )
    _live_option(rec)
    rec.set_defaults(handler=cmd_reconcile)

    summary = sub.add_parser("summary", help="a tenant's usage, pending pushes, last verdict")
    summary.add_argument(
        "--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)"
    )
    summary.add_argument("--json", action="store_true", help="one JSON object instead of text")
    summary.set_defaults(handler=cmd_summary)

    fixes = sub.add_parser("corrections", help="corrections after close: list, apply")
    fixes_sub = fixes.add_subparsers(
        dest="corrections_command", required=True, metavar="ACTION", help="list or apply"
    )
    listing = fixes_sub.add_parser("list", help="the tenant's corrections, newest first")
    listing.add_argument(
        "--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)"
    )
    listing.add_argument(
        "--status", choices=("proposed", "applied", "superseded"), default=None, help="only these"
    )
    listing.add_argument("--json", action="store_true", help='one JSON {"data": [...]} object')
    listing.set_defaults(handler=cmd_corrections)
    applying = fixes_sub.add_parser("apply", help="create corrections in Stripe, exactly once")
    applying.add_argument(
        "--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)"
    )
    which = applying.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=_correction_id, help="the correction to apply")
    which.add_argument("--all", action="store_true", help="every proposed correction")
    applying.add_argument(
        "--dry-run", action="store_true", help="print what would be applied, change nothing"
    )
    _live_option(applying)
    applying.set_defaults(handler=cmd_corrections)
    report = sub.add_parser(
        "report",
        help="a tenant's parity report (report.html + report.json) for a month",
        description="Write report.html and report.json: per billing period starting in the "
        "month, the hourly ledger beside what was sent to Stripe, the invoice line, the "
        "corrections and the drift, from this service's database. Exit 2 on bad input or "
        "when the tenant has no reconciliation report there.",
    )
    report.add_argument(
        "--tenant", type=_tenant, required=True, help="tenant id (a name or a UUID)"
    )
    report.add_argument(
        "--period",
        type=_month,
        required=True,
        metavar="YYYY-MM",
        help="the billing periods starting in this month",
    )
    report.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="where to write (default: .)"
    )
    report.set_defaults(handler=cmd_report)
    describe_subcommands(parser)
    return parser


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand and action without a description its one-line `help`, so
    that `stripemeter db --help` says what `db` is, as `stripemeter --help` lists it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                if child.description is None and helps.get(name):
                    child.description = str(helps[name])
                describe_subcommands(child)


def error_line(exc: BaseException) -> str:
    """`error: <message>` on one line, as the CLI and the workers print a failure."""
    return "error: " + (" ".join(str(exc).split()) or type(exc).__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stripemeter` console script; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("stripemeter").setLevel(logging.INFO)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        # `reconcile` exits 2 on drift: its usage errors exit 1, so that a script
        # alerting on drift never mistakes a typo for one.
        words = list(sys.argv[1:] if argv is None else argv)
        if exc.code == 2 and "reconcile" in words[:1]:
            raise SystemExit(1) from None
        raise
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        live = {"STRIPEMETER_LIVE": True} if getattr(args, "live", False) else {}
        settings = load_settings(**live)
        return handler(args, settings)
    except StripemeterError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
