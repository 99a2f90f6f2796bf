"""JSON in and out of the API without losing a digit.

Requests are parsed with the standard library's scanner so that every JSON number
with a fraction or exponent becomes a `Decimal` (floats would round quantities);
`NaN`/`Infinity`, which Python accepts but JSON does not, are refused. Answers are
rendered with orjson, writing `Decimal` as a string so clients never get a rounded
float back.
"""

from __future__ import annotations

import decimal
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from starlette.responses import Response

# Wide enough that no quantity (numeric(38, 6)) or bucket total is ever rounded.
EXACT = decimal.Context(prec=200, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


class JsonBodyError(ValueError):
    """The body is not JSON we accept; the message says where and why."""


def _refuse_constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not valid JSON (numbers must be finite)")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def parse_json_exact(raw: bytes) -> Any:
    """Parse a UTF-8 JSON document, reading non-integer numbers as exact `Decimal`s."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"body is not UTF-8 text (byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JsonBodyError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JsonBodyError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise JsonBodyError(f"body has a value we cannot read: {exc}") from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_decimal(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def format_decimal(value: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros ("425", "0.5")."""
    if value == 0:
        return "0"
    return format(value.normalize(EXACT), "f")


def dumps(content: Any) -> bytes:
    """Serialize an answer: Decimals as strings, datetimes as ISO-8601, UUIDs as text.

    Error answers may quote client input, which can hold unpaired surrogates (valid
    as JSON escapes, not as UTF-8); those are written as `\\uXXXX` escapes instead.
    """
    try:
        return orjson.dumps(content, default=_default)
    except TypeError:
        return json.dumps(content, default=_default, ensure_ascii=True).encode("ascii")


def canonical_bytes(content: Any) -> bytes:
    """A stable serialization (sorted keys) used for hashing request and event content."""
    try:
        return orjson.dumps(content, default=_default, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # unpaired surrogates: fall back to escaped ASCII
        return json.dumps(
            content, default=_default, sort_keys=True, ensure_ascii=True, separators=(",", ":")
        ).encode("ascii")


def meta_to_json(meta: dict[str, Any]) -> str:
    """The `meta` object as JSON text for a jsonb column.

    A number in `meta` stays a number when a float holds it exactly, else it is kept
    as its decimal text (meta is descriptive; quantities never go through here).
    """
    return json.dumps(meta, default=_meta_default, ensure_ascii=False, separators=(",", ":"))


def _meta_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        if math.isfinite(as_float) and Decimal(repr(as_float)) == value:
            return as_float
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JsonResponse(Response):
    """orjson-rendered JSON answer (Decimal -> string)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def iso(ts: datetime) -> str:
    """An aware datetime as ISO-8601 in UTC with a `Z` suffix."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def uuid_text(value: UUID | None) -> str | None:
    """A UUID (or None) as its canonical text."""
    return None if value is None else str(value)
