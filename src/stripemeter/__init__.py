"""stripemeter: exactly-once usage metering for Stripe Billing Meters.

The service, one package per concept (each package's docstring lists its modules):

    ingest/      events in: validation, the idempotent ledger, usage totals
    mappings/    price mappings, their meters, customer bindings
    stripe/      the Stripe seam: the client factory and the gateway (only SDK importer)
    writer/      ledger -> Stripe meter events through an outbox, exactly once
    reconciler/  ledger vs. Stripe: reports, drift, runs
    corrections/ fixing a final invoice that billed wrong: invoice items, credit notes
    workers/     the process that runs the writer and the reconciler
    ops/         metrics and log throttling
    api/         HTTP only: routes, auth dependencies, error bodies, serving
    db/          connections, the pool, the embedded PostgreSQL, migrations

Rules shared by several packages live in top-level modules: `config` (the service's
settings, the only reader of the environment), `periods` (time), `jsonio` (exact JSON),
`auth` (API keys and scopes). `cli` is the `stripemeter` command. `package_version()`
is the one version string (`stripemeter --version`, the OpenAPI document's `version`).

The dev stack (runners for `invoke`) is the separate `stripemeter_dev` package; nothing
here imports it.
"""


def package_version() -> str:
    """The installed distribution's version (package metadata), or `unknown` when run
    from a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stripemeter")
    except PackageNotFoundError:
        return "unknown"
