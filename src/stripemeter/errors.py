"""Every exception stripemeter raises on purpose, under one root.

Entry points (the API, the `stripemeter` CLI, the workers, the demo steps, `tasks.py`)
catch `StripemeterError` once and turn it into one line (or one JSON error body); any
other exception is a bug and keeps its traceback. The tree:

    StripemeterError
    ├── ConfigError                  a setting has a value we cannot use (names the variable)
    │   └── StripeConfigError        live or non-test Stripe key, refused before any call
    ├── InputError (ValueError)      one field of a request or event is wrong (code, field)
    │   ├── JsonBodyError            the body is not JSON we accept
    │   ├── UnknownScope             an API-key scope that does not exist
    │   ├── WebhookSignatureError    a webhook whose Stripe-Signature does not verify (400)
    │   └── WebhookPayloadError      a verified webhook body that is not a Stripe event (400)
    ├── ConflictError                the request contradicts what is stored
    │   ├── IdempotencyConflict      an Idempotency-Key reused with another body
    │   ├── BindingConflict          a Stripe customer already bound elsewhere
    │   ├── MappingConflict          a metric's mapping cannot be switched off as asked
    │   └── CorrectionSuperseded     a correction replaced by a newer proposal (not applied)
    ├── CorrectionNotFound           no such correction, or another tenant's
    ├── UnknownApiKey                no API key with that id (`stripemeter api-keys revoke`)
    ├── DatabaseUnavailable          PostgreSQL cannot be reached
    │   ├── EmbeddedDatabaseError    the embedded server would not start or stop
    │   └── DatabaseTimeout          no pooled connection in time (also psycopg's PoolTimeout)
    ├── SchemaNotCurrent             the database lacks shipped migrations (`stripemeter migrate`)
    ├── GatewayError                 a Stripe call did not succeed
    │   ├── StripeUnavailable        Stripe could not be reached or kept failing (retryable)
    │   └── StripeRefused            Stripe answered no (not retryable)
    │       └── StripeKeyRefused     the key itself was refused (401), not the request
    │           └── StripePermissionMissing  a restricted key lacks a permission (names it)
    ├── OwnershipError               a Stripe object is not the tenant's to use (code says why)
    │   ├── UnknownStripeCustomer    the customer does not exist in Stripe
    │   └── ItemRefused              a subscription item failed its ownership check
    ├── ShuttingDown                 the process is stopping; a retry backoff ended early
    ├── ReconciliationError          a reconciliation could not read what it compares
    ├── ApiError                     an HTTP answer other than success (in stripemeter.api.errors)
    ├── CliError                     a `stripemeter` command cannot go on
    ├── ReportError                  a parity report has no data to show, or cannot be written
    └── BackfillError                a backfill cannot start or go on (file, checkpoint)

Outside the service package, on the same root: `stripemeter_dev.runner.RunnerError`
(the dev stack), `stripemeter_dev.scenarios.loader.ScenarioError` (a scenario file that
cannot be run) and `steps._env.StepError` (the demo steps).
"""

from __future__ import annotations

from psycopg_pool import PoolTimeout


class StripemeterError(Exception):
    """The root: an expected failure whose message is meant for the person running us."""


class ConfigError(StripemeterError):
    """A configuration variable has a value we cannot use; the message names it."""


class StripeConfigError(ConfigError):
    """The Stripe key or base address cannot be used; the message says why."""


class InputError(StripemeterError, ValueError):
    """One problem with the input: machine code, message, and the field it is about."""

    def __init__(self, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class JsonBodyError(InputError):
    """The body is not JSON we accept; the message says where and why."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_json", message, None)


class UnknownScope(InputError):
    """A scope name that is not one of `auth.ALL_SCOPES`."""

    def __init__(self, message: str) -> None:
        super().__init__("unknown_scope", message, "scopes")


class WebhookSignatureError(InputError):
    """The webhook's `Stripe-Signature` is missing, malformed, stale or wrong."""

    def __init__(self, message: str) -> None:
        super().__init__("signature_verification_failed", message, "Stripe-Signature")


class WebhookPayloadError(InputError):
    """The signed body is not a Stripe event we can read (no id or type, not JSON)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_event", message, None)


class ConflictError(StripemeterError):
    """The request contradicts what is already stored (a 409 at the API)."""


class IdempotencyConflict(ConflictError):
    """The request's Idempotency-Key was used before with a different body."""


class BindingConflict(ConflictError):
    """The Stripe customer is already bound elsewhere."""


class MappingConflict(ConflictError):
    """A metric has an active and an older inactive mapping; switching off needs one."""


class CorrectionSuperseded(ConflictError):
    """The correction was superseded by a newer proposal for its period; apply that one."""


class CorrectionNotFound(StripemeterError):
    """No correction with that id belongs to the caller's tenant."""


class UnknownApiKey(StripemeterError):
    """No API key has that id; the message says where the ids are listed."""


class DatabaseUnavailable(StripemeterError):
    """The database cannot be reached; the message says which and why."""


class EmbeddedDatabaseError(DatabaseUnavailable):
    """The embedded server could not be started or stopped; the message says why."""


class DatabaseTimeout(DatabaseUnavailable, PoolTimeout):
    """No pooled connection within the timeout: the database is down, or every
    connection is busy."""


class SchemaNotCurrent(StripemeterError):
    """The database lacks shipped migrations; `pending` are their file names."""

    def __init__(self, pending: list[str]) -> None:
        super().__init__(
            f"the database schema is not up to date (pending: {', '.join(pending)}); "
            "run `stripemeter migrate` first"
        )
        self.pending = pending


class GatewayError(StripemeterError):
    """A Stripe call did not succeed; the message says which call and why."""


class StripeUnavailable(GatewayError):
    """Stripe could not be reached, or kept failing after the retries (try again later)."""


class StripeRefused(GatewayError):
    """Stripe answered with a client error (4xx other than 429); `code`, `param` are Stripe's."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


class StripeKeyRefused(StripeRefused):
    """Stripe refused the key (401: invalid, revoked; or a missing permission), not the
    request: the same request succeeds once the key is fixed, so nothing is given up."""


class StripePermissionMissing(StripeKeyRefused):
    """Stripe answered 403: the (restricted) key lacks `permission` for the call, e.g.
    `rak_billing_meter_event_write`; None when Stripe named none."""

    def __init__(self, message: str, *, permission: str | None) -> None:
        super().__init__(message, code="permission_missing")
        self.permission = permission


class OwnershipError(StripemeterError):
    """A Stripe object is not the tenant's to use; `code` is the stable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownStripeCustomer(OwnershipError):
    """The Stripe customer id does not exist in the configured Stripe account."""

    def __init__(self, message: str) -> None:
        super().__init__("unknown_stripe_customer", message)


class ItemRefused(OwnershipError):
    """A mapping's subscription item failed its ownership check."""


class ShuttingDown(StripemeterError):
    """The process is stopping: a retry backoff ended early; the work stays pending.

    Deliberately not a `GatewayError`: a shutdown is not a Stripe outage, so nothing
    records it as one.
    """


class ReconciliationError(StripemeterError):
    """Stripe or the database could not be read; no report was made from guesses.

    `refused` is true when every failure was Stripe refusing a request (a mapping that
    names a price Stripe does not have, say): the configuration is wrong, Stripe is up.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class CliError(StripemeterError):
    """A `stripemeter` command cannot go on; the message is printed as one line."""


class ReportError(StripemeterError):
    """A parity report cannot be made: no reconciliation data for the tenant and period
    asked, or the output cannot be written; the message names what to change."""


class BackfillError(StripemeterError):
    """A backfill cannot start or go on: the file or its checkpoint is unusable, or a
    batch could not be stored; the message says what to do (the checkpoint is kept)."""
