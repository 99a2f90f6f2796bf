"""Stripe's error shape and the few constructors every resource module uses.

Every refusal the emulator makes is a `StripeError` raised from a handler; the app turns
it into `{"error": {"type", "code", "message", "param"}}` with the HTTP status the SDK maps
to its exception classes (400/404 -> InvalidRequestError, 401 -> AuthenticationError,
402 -> CardError, 409/5xx -> APIError, 429 -> RateLimitError).
"""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """A refusal rendered in Stripe's JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe sends for this error."""
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            err["param"] = self.param
        err.update(self.extra)
        return {"error": err}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 invalid_request_error."""
    return StripeError(400, message, code=code, param=param)


def unknown_param(param: str) -> StripeError:
    """400 parameter_unknown naming the parameter (message format: facts §1.6 [inferred])."""
    return invalid(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")


def emulator_unsupported(param: str) -> StripeError:
    """A parameter real Stripe accepts but the emulator does not implement (never silent)."""
    return invalid(
        f"The Stripe emulator does not support the parameter '{param}'. Real Stripe accepts "
        "it; drop it when testing offline, or run this flow against Stripe test mode.",
        param=param,
        code="emulator_unsupported",
    )


def missing_param(param: str) -> StripeError:
    """400 parameter_missing naming the parameter."""
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def invalid_integer(param: str, message: str | None = None) -> StripeError:
    """400 parameter_invalid_integer for a value that is not an acceptable integer."""
    return invalid(
        message or f"Invalid integer: {param}", param=param, code="parameter_invalid_integer"
    )


def not_found(kind: str, obj_id: str, *, param: str = "id") -> StripeError:
    """404 resource_missing: "No such customer: 'cus_x'" ([inferred] facts §1.6)."""
    return StripeError(404, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def api_error(status: int, message: str) -> StripeError:
    """A server failure (5xx), rate limit (429) or refusal (400) in Stripe's shape (faults)."""
    if status == 429:
        return StripeError(
            429,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status == 400:
        return StripeError(400, message)
    return StripeError(status, message, type_="api_error")
