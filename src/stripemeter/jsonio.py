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
from json.encoder import encode_basestring_ascii as _ascii_string
from typing import Any

import orjson
from starlette.responses import Response

from stripemeter.errors import JsonBodyError

# Wide enough that no quantity (numeric(38, 6)) or bucket total is ever rounded.
EXACT = decimal.Context(prec=200, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


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


# An integral number is written as plain digits up to this many (Python's own limit for
# int <-> str, so every JSON integer qualifies); beyond it (only `1e999999`-like
# decimals) as `<digits>e<exponent>`, so a short number never expands to a huge text.
_PLAIN_INTEGER_DIGITS = 4300


def canonical_number(value: int | Decimal) -> str:
    """A JSON number in the one form every notation of its value shares.

    `1`, `1.0`, `1.00`, `1e0` and `10e-1` are all `1`; `1E+2` is `100`; `1.50` is
    `15e-2`... precisely: an integral value is its plain digits (as `str(int)` writes
    them), any other value is `<digits without trailing zeros>e<exponent>` (`1.5` is
    `15e-1`); zero and `-0` are `0`. Trailing zeros are moved into the exponent by
    hand, not with `Decimal.normalize`, which would round a number longer than the
    context's precision (two different numbers would then hash alike).
    """
    if isinstance(value, int):  # JSON integers (bools never reach here)
        return str(value)
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    # Decimal's own text ("-1.50", "1E+3", "1.5E-7"), taken apart: faster than as_tuple.
    text = str(value)
    minus = "-" if text[0] == "-" else ""
    mantissa, _, exponent_text = text.lstrip("-").partition("E")
    whole, _, fraction = mantissa.partition(".")
    exponent = (int(exponent_text) if exponent_text else 0) - len(fraction)
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    if exponent >= 0 and len(stripped) + exponent <= _PLAIN_INTEGER_DIGITS:
        return minus + stripped + "0" * exponent
    return f"{minus}{stripped}e{exponent}"


def _canonical_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(canonical_number(value))
    raise TypeError(f"{type(value).__name__} is not JSON content")


class _Raw(str):
    """JSON text already written (punctuation, a key with its colon)."""


_OPEN_OBJECT, _CLOSE_OBJECT = _Raw("{"), _Raw("}")
_OPEN_ARRAY, _CLOSE_ARRAY, _COMMA = _Raw("["), _Raw("]"), _Raw(",")


def _string(text: str) -> str:
    """A JSON string as orjson writes it; escaped to ASCII if it has unpaired surrogates."""
    try:
        return orjson.dumps(text).decode()
    except TypeError:
        return _ascii_string(text)


def canonical_bytes(content: Any) -> bytes:
    """Canonical JSON of parsed JSON content, for hashing: equal content, equal bytes.

    Object keys sorted (by code point), no whitespace, strings as UTF-8 with JSON's
    minimal escapes, every number in the form of `canonical_number` (so `1`, `1.0` and
    `1e0` are one number, while `1` and `"1"` stay different). orjson writes it when it
    can; content it refuses (an integer beyond 64 bits, an unpaired surrogate, nesting
    deeper than 255) is written by `_canonical_slow` to the same rules, with an explicit
    stack rather than recursion, so any body the parser accepts can be hashed.
    """
    try:
        return orjson.dumps(content, default=_canonical_default, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _canonical_slow(content).encode("utf-8")


def _canonical_slow(content: Any) -> str:
    out: list[str] = []
    stack: list[Any] = [content]
    while stack:
        item = stack.pop()
        if type(item) is _Raw:
            out.append(item)
        elif item is None:
            out.append("null")
        elif item is True:
            out.append("true")
        elif item is False:
            out.append("false")
        elif isinstance(item, str):
            out.append(_string(item))
        elif isinstance(item, int | Decimal):
            out.append(canonical_number(item))
        elif isinstance(item, dict):
            keys = sorted(item)
            stack.append(_CLOSE_OBJECT)
            for index in range(len(keys) - 1, -1, -1):
                stack.append(item[keys[index]])
                stack.append(_Raw(_string(keys[index]) + ":"))
                if index:
                    stack.append(_COMMA)
            stack.append(_OPEN_OBJECT)
        elif isinstance(item, list | tuple):
            stack.append(_CLOSE_ARRAY)
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_COMMA)
            stack.append(_OPEN_ARRAY)
        else:
            raise TypeError(f"{type(item).__name__} is not JSON content")
    return "".join(out)


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
