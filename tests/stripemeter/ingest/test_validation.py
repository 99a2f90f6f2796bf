"""Event validation rules, one by one, without HTTP or a database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from stripemeter.errors import InputError, JsonBodyError
from stripemeter.ingest.validation import validate_event
from stripemeter.jsonio import canonical_bytes, canonical_number, format_decimal, parse_json_exact

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TENANT = "8F2C7B1E-0000-4000-8000-000000000001"


def check(**fields: Any) -> Any:
    event: dict[str, Any] = {
        "tenantId": TENANT,
        "metric": "api_calls",
        "customerRef": "cus_1",
        "quantity": 1,
        "ts": "2026-11-24T11:00:00Z",
    }
    event.update(fields)
    return validate_event(event, now=NOW, max_skew_s=300, max_meta_bytes=64)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"1.5000000", Decimal("1.5")),  # written with 7 decimals, has 1
        (b"0.000001", Decimal("0.000001")),
        (b"-0.0", Decimal(0)),
        (b"1E+3", Decimal(1000)),
        (b"999999999999999", Decimal("999999999999999")),  # 15 digits: the most Stripe takes
        (b"999999999999999.999999", Decimal("999999999999999.999999")),
        (b"123456789012345.123456", Decimal("123456789012345.123456")),
    ],
)
def test_quantities_accepted_exactly(raw: bytes, stored: Decimal) -> None:
    quantity = parse_json_exact(b'{"q": ' + raw + b"}")["q"]
    assert check(quantity=quantity).quantity == stored


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"0.0000001", "at most 6 decimal places"),
        (b"1E-7", "at most 6 decimal places"),
        (b"1000000000000000", r"less than 1e15 \(1000000000000000\)"),
        (b"1E+15", "at most 15 digits"),
        (b"1e20", "less than 1e15"),
        (b"100000000000000000000000000000000", "less than 1e15"),
        (b"-0.5", ">= 0"),
        (b"true", "got boolean"),
        (b'"3"', "got string"),
        (b"[3]", "got array"),
    ],
)
def test_quantities_refused(raw: bytes, says: str) -> None:
    quantity = parse_json_exact(b'{"q": ' + raw + b"}")["q"]
    with pytest.raises(InputError, match=says) as refused:
        check(quantity=quantity)
    assert refused.value.field == "quantity"


def test_timestamps_keep_their_instant_and_skew_is_bounded() -> None:
    assert check(ts="2026-11-24T13:00:00+01:00").ts == datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert check(ts="2026-11-24T12:05:00Z").ts.minute == 5  # exactly the allowed skew
    with pytest.raises(InputError, match="in the future"):
        check(ts="2026-11-24T12:05:01Z")


def test_tenant_uuid_is_normalised_and_meta_is_limited() -> None:
    assert str(check().tenant_id) == TENANT.lower()
    assert check(meta={"a": 1}).meta_json == '{"a":1}'
    with pytest.raises(InputError, match="the limit is 64"):
        check(meta={"a": "x" * 64})


def test_nan_and_infinity_are_not_json() -> None:
    for raw in (b'{"q": NaN}', b'{"q": Infinity}', b'{"q": -Infinity}'):
        with pytest.raises(JsonBodyError, match="not valid JSON"):
            parse_json_exact(raw)


def test_decimals_are_formatted_without_exponent_or_trailing_zeros() -> None:
    assert format_decimal(Decimal("425.000000")) == "425"
    assert format_decimal(Decimal("1E+3")) == "1000"
    assert format_decimal(Decimal("0E-6")) == "0"
    long = "12345678901234567890123456789012.123456"
    assert format_decimal(Decimal(long)) == long


@pytest.mark.parametrize(
    ("field", "value"),
    [("tenantId", TENANT + "\n"), ("metric", "calls\n"), ("metric", "calls\r\n")],
)
def test_a_trailing_newline_is_refused_not_stored(field: str, value: str) -> None:
    # `re.match` with `$` admits one trailing newline: "calls\n" was stored, and a tenant
    # id with one reached UUID() and answered 500.
    with pytest.raises(InputError) as refused:
        check(**{field: value})
    assert refused.value.field == field


@hypothesis.given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.integers(min_value=0, max_value=8),
)
def test_canonical_number_is_one_text_per_value(value: Decimal, zeros: int) -> None:
    # The same value in other notations (trailing zeros, exponent form) has one text, and
    # that text reads back as the value: content keys and request fingerprints rely on it.
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    padded = Decimal((sign, digits + (0,) * zeros, exponent - zeros))  # 1.5 -> 1.5000
    notations = [value, padded, Decimal(format(value, "e")), Decimal(str(value))]
    texts = {canonical_number(v) for v in notations}
    assert len(texts) == 1
    assert Decimal(texts.pop()) == value
    if value == value.to_integral_value() and abs(value) < 10**40:
        assert canonical_number(int(value)) == canonical_number(value)


def test_canonical_bytes_sorts_keys_normalizes_numbers_and_keeps_types() -> None:
    one = parse_json_exact(b'{"b": [1, 2.50, {"y": 1e2, "x": null}], "a": "\\u00e9"}')
    two = parse_json_exact(b'{"a": "\\u00e9", "b": [1.0, 25e-1, {"x": null, "y": 100}]}')
    assert canonical_bytes(one) == canonical_bytes(two)
    assert canonical_bytes(one) == '{"a":"é","b":[1,25e-1,{"x":null,"y":100}]}'.encode()
    assert canonical_bytes({"a": 1}) != canonical_bytes({"a": "1"})
    assert canonical_bytes([1, 2]) != canonical_bytes([2, 1])
    # What orjson refuses (deep nesting, huge integers, lone surrogates) is written by the
    # fallback to the same rules, so it hashes without error.
    deep = parse_json_exact(b"[" * 600 + b"1.0" + b"]" * 600)
    assert canonical_bytes(deep) == b"[" * 600 + b"1" + b"]" * 600
    assert (
        canonical_bytes({"n": 2**70, "d": Decimal("1.0")}) == b'{"d":1,"n":1180591620717411303424}'
    )
    assert canonical_bytes(["\ud800", 1]) == b'["\\ud800",1]'
    huge = parse_json_exact(b'{"x": 1e999999999}')
    assert canonical_bytes(huge) == b'{"x":1e999999999}'  # not a billion digits
