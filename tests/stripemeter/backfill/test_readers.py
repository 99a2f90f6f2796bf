"""The backfill readers: line numbers, exact numbers, and bad records that do not stop."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from stripemeter.backfill.readers import Position, Record, format_of, read_csv, read_jsonl
from stripemeter.errors import BackfillError, InputError

HEADER = b"tenantId,metric,customerRef,quantity,ts,meta\n"


def _records(reader: object) -> list[Record]:
    return [record for _, record in reader if record is not None]  # type: ignore[attr-defined]


def test_jsonl_reads_decimals_exactly_skips_blank_lines_and_numbers_lines_from_1() -> None:
    data = b'{"quantity": 1.50}\n\n  \n{"quantity": 1e400}\nnot json\n\xff\n'
    position = Position()
    records = _records(read_jsonl(io.BytesIO(data), position))
    assert [r.line for r in records] == [1, 4, 5, 6]
    assert records[0].value == {"quantity": Decimal("1.50")}
    assert str(records[0].value["quantity"]) == "1.50"  # type: ignore[index]
    assert records[1].value == {"quantity": Decimal("1e400")}
    assert isinstance(records[2].value, InputError) and records[2].value.code == "invalid_json"
    assert isinstance(records[3].value, InputError)
    assert records[3].value.message == "body is not UTF-8 text (byte 0)"
    assert position.bytes == len(data)


def test_jsonl_skips_the_first_records_without_reading_them() -> None:
    data = b"not json\n\n{}\n[]\n"
    out = list(read_jsonl(io.BytesIO(data), Position(), skip=2))
    assert [(count, r.line if r else None) for count, r in out] == [(1, None), (2, None), (3, 4)]


def test_csv_cells_are_read_as_the_api_reads_json() -> None:
    data = HEADER + (
        b't,m,c,1.50,2026-01-01T00:00:00Z,"{""w"": 2.0}"\n'
        b"t,m,c,-1,2026-01-01T00:00:00Z,\n"
        b"t,m,c,ten,2026-01-01T00:00:00Z,\n"
        b't,m,"two\nlines",7,2026-01-01T00:00:00Z,\n'
        b"\n"
        b"t,m,c,1,2026-01-01T00:00:00Z,{bad\n"
    )
    records = _records(read_csv(io.BytesIO(data), Position(), "f.csv"))
    assert [r.line for r in records] == [2, 3, 4, 5, 8]
    first = records[0].value
    assert first == {
        "tenantId": "t",
        "metric": "m",
        "customerRef": "c",
        "quantity": Decimal("1.50"),
        "ts": "2026-01-01T00:00:00Z",
        "meta": {"w": Decimal("2.0")},
    }
    assert records[1].value["quantity"] == -1  # type: ignore[index]
    assert records[2].value["quantity"] == "ten"  # type: ignore[index]
    assert records[3].value["customerRef"] == "two\nlines"  # type: ignore[index]
    bad = records[4].value
    assert isinstance(bad, InputError) and (bad.code, bad.field) == ("invalid_json", "meta")


def test_a_csv_row_of_invalid_utf8_is_rejected_and_the_next_row_read() -> None:
    data = HEADER + b"t,m,\xff,1,2026-01-01T00:00:00Z,\nt,m,c,1,2026-01-01T00:00:00Z,\n"
    records = _records(read_csv(io.BytesIO(data), Position(), "f.csv"))
    assert isinstance(records[0].value, InputError)
    assert records[0].value.message == "line is not UTF-8 text"
    assert isinstance(records[1].value, dict) and records[1].line == 3


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"", "f.csv is empty: a CSV backfill file starts with a header row"),
        (b"tenantId,metric,customerRef,quantity,ts,ts\n", "f.csv: CSV header names 'ts' more"),
        (b"tenantId,metric,customerRef,ts\n", "f.csv: CSV header lacks the required column"),
        (b"tenantId,metric,customerRef,quantity,ts,x\n", "f.csv: CSV header column 'x' is not"),
    ],
)
def test_a_csv_header_that_is_not_the_ingest_fields_stops_the_run(
    header: bytes, message: str
) -> None:
    with pytest.raises(BackfillError, match="^" + message.replace("(", r"\(")):
        list(read_csv(io.BytesIO(header), Position(), "f.csv"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.jsonl", "jsonl"), ("a.NDJSON", "jsonl"), ("a.json", "jsonl"), ("a.csv", "csv")],
)
def test_the_format_comes_from_the_extension(name: str, expected: str) -> None:
    assert format_of(name) == expected
