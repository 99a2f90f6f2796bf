"""Declarative parameter specs: type conversion plus Stripe's unknown/missing refusals.

Each endpoint declares the parameters it accepts as a `dict[str, Spec]`; `validate`
converts the form-decoded strings (ints, booleans, decimals, enums, nested objects,
lists, free string maps like `metadata`) and names the offending parameter the way
Stripe does (`recurring[meter]`, `items[0][price]`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from stripe_emulator.errors import (
    emulator_unsupported,
    invalid,
    invalid_integer,
    missing_param,
    unknown_param,
)

_INT = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class Spec:
    """What one parameter accepts."""

    kind: str
    required: bool = False
    fields: Mapping[str, Spec] = field(default_factory=dict)
    item: Spec | None = None
    choices: tuple[str, ...] = ()


def s(required: bool = False) -> Spec:
    """A string."""
    return Spec("str", required)


def i(required: bool = False) -> Spec:
    """An integer (sent as decimal digits)."""
    return Spec("int", required)


def b(required: bool = False) -> Spec:
    """A boolean (`true`/`false`)."""
    return Spec("bool", required)


def d(required: bool = False) -> Spec:
    """A decimal string (e.g. `unit_amount_decimal`), kept as `Decimal`."""
    return Spec("decimal", required)


def e(*choices: str, required: bool = False) -> Spec:
    """One of a fixed set of strings."""
    return Spec("enum", required, choices=choices)


def m(required: bool = False) -> Spec:
    """A free map of string keys to string values (`metadata`, `payload`)."""
    return Spec("map", required)


def o(fields: Mapping[str, Spec], required: bool = False) -> Spec:
    """A nested object with its own declared fields."""
    return Spec("obj", required, fields=fields)


def u() -> Spec:
    """A parameter Stripe documents that the emulator refuses as `emulator_unsupported`."""
    return Spec("unsupported")


def anything() -> Spec:
    """Any value (scalar, object or list), accepted and kept as sent: for fields that do
    not affect billing and are only echoed (addresses, locales, images)."""
    return Spec("any")


def lst(item: Spec, required: bool = False) -> Spec:
    """An array (`a[0]=`, `a[]=`) of `item`."""
    return Spec("list", required, item=item)


EXPAND = lst(s())
PAGING: dict[str, Spec] = {
    "limit": i(),
    "starting_after": s(),
    "ending_before": s(),
    "expand": EXPAND,
}
RANGE = o({"gt": i(), "gte": i(), "lt": i(), "lte": i()})
CREATED = Spec("range_or_int")
"""Stripe's `created` list filter: an exact timestamp or a `gt`/`gte`/`lt`/`lte` range."""


def validate(specs: Mapping[str, Spec], raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Convert `raw` per `specs`; unknown -> parameter_unknown, absent required -> missing.

    An empty string means "unset" (facts §1.3) and becomes None for optional parameters.
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}[{key}]" if prefix else key
        spec = specs.get(key)
        if spec is None:
            raise unknown_param(name)
        out[key] = _convert(spec, value, name)
    for key, spec in specs.items():
        name = f"{prefix}[{key}]" if prefix else key
        if spec.required and out.get(key) is None:
            if key in raw and raw[key] == "":
                raise invalid(
                    f"You passed an empty string for '{name}'. We assume empty values are an "
                    f"attempt to unset a parameter; however '{name}' cannot be unset. You "
                    f"should remove '{name}' from your request or supply a non-empty value.",
                    param=name,
                    code="parameter_invalid_empty",
                )
            raise missing_param(name)
    return out


def _convert(spec: Spec, value: Any, name: str) -> Any:
    if spec.kind == "unsupported":
        raise emulator_unsupported(name)
    if spec.kind == "any":
        return value
    if isinstance(value, str) and value == "" and spec.kind != "str":
        return None
    kind = spec.kind
    if kind in ("str", "int", "bool", "decimal", "enum") and not isinstance(value, str):
        raise invalid(f"Invalid {name}: expected a single value, not an object", param=name)
    if kind == "str":
        return value if value != "" else None
    if kind == "int":
        if not _INT.match(value) or not -(2**63) <= int(value) < 2**63:
            raise invalid_integer(name, f"Invalid integer: {value}")
        return int(value)
    if kind == "bool":
        if value not in ("true", "false"):
            raise invalid(f"Invalid boolean: {value}", param=name)
        return value == "true"
    if kind == "decimal":
        try:
            dec = Decimal(value)
        except InvalidOperation:
            raise invalid(f"Invalid decimal: {value}", param=name) from None
        if not dec.is_finite():
            raise invalid(f"Invalid decimal: {value}", param=name)
        return dec
    if kind == "enum":
        if value not in spec.choices:
            raise invalid(f"Invalid {name}: must be one of {', '.join(spec.choices)}", param=name)
        return value
    if kind == "map":
        if isinstance(value, list):
            value = {str(n): v for n, v in enumerate(value)}
        if not isinstance(value, dict):
            raise invalid(f"Invalid {name}: expected an object", param=name)
        for k, v in value.items():
            if not isinstance(v, str):
                raise invalid(f"Invalid {name}[{k}]: expected a string", param=f"{name}[{k}]")
        return dict(value)
    if kind == "obj":
        if not isinstance(value, dict):
            raise invalid(f"Invalid {name}: expected an object", param=name)
        return validate(spec.fields, value, name)
    if kind == "range_or_int":
        if isinstance(value, str):
            return {"eq": _convert(i(), value, name)}
        return _convert(RANGE, value, name)
    if kind == "list":
        assert spec.item is not None
        items = value if isinstance(value, list) else [value]
        converted = [_convert(spec.item, v, f"{name}[{n}]") for n, v in enumerate(items)]
        return [v for v in converted if v is not None]
    raise AssertionError(kind)
