"""Readers for backfill files: JSON lines and CSV, both in the ingest event shape.

A reader yields one `Record` per non-blank record: its line number (1-based, the line
a record starts on) and either the event as the API would have parsed it (a dict, with
exact numbers) or the `InputError` that makes it unreadable. A bad record never stops
the reader; only a file-level problem (unreadable file, CSV header not the ingest field
names) raises `BackfillError`.

CSV: the header row names ingest fields (`tenantId,metric,customerRef,quantity,ts,...`);
an empty cell is an absent field; `quantity` is read as a JSON number (so `1.50` is the
exact decimal and `-1` is refused by validation as the API refuses it); `meta` is a JSON
object. Everything else is text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from stripemeter.errors import BackfillError, InputError, JsonBodyError
from stripemeter.ingest.validation import EVENT_FIELDS
from stripemeter.jsonio import parse_json_exact

FORMATS = ("jsonl", "csv")
REQUIRED_FIELDS = ("tenantId", "metric", "customerRef", "quantity", "ts")
# The JSON number grammar: a CSV quantity matching it is parsed as the API parses a
# JSON number; anything else stays text (and validation says it is not a number).
JSON_NUMBER = re.compile(r"\A-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


@dataclass(frozen=True)
class Record:
    """One record of the file: where it starts and what it holds (or why it is bad)."""

    line: int
    value: dict[str, Any] | object | InputError


class Position:
    """How far into the file a reader has got, in bytes (for the progress ETA)."""

    def __init__(self) -> None:
        self.bytes = 0


def format_of(path: str) -> str:
    """The format named by the file's extension, or `BackfillError`."""
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    raise BackfillError(
        f"cannot tell the format of {path} from its extension (.jsonl, .ndjson or .csv); "
        "pass --format jsonl or --format csv"
    )


def read_jsonl(
    stream: IO[bytes], position: Position, skip: int = 0
) -> Iterator[tuple[int, Record | None]]:
    """(records so far, record) per non-blank line; the first `skip` records are not parsed.

    Skipped records are yielded as `None` (only their count matters).
    """
    count = 0
    for line_no, raw in enumerate(stream, start=1):
        position.bytes += len(raw)
        if not raw.strip():
            continue
        count += 1
        if count <= skip:
            yield count, None
            continue
        value: Any
        try:
            value = parse_json_exact(raw)
        except JsonBodyError as exc:
            value = exc
        yield count, Record(line_no, value)


def _csv_quantity(text: str) -> Any:
    if JSON_NUMBER.fullmatch(text):
        return parse_json_exact(text.encode())
    return text


def _csv_header(row: list[str] | None, path: str) -> list[str]:
    if row is None:
        raise BackfillError(f"{path} is empty: a CSV backfill file starts with a header row")
    header = [name.strip() for name in row]
    unknown = [name for name in header if name not in EVENT_FIELDS]
    if unknown:
        raise BackfillError(
            f"{path}: CSV header column {unknown[0]!r} is not an ingest field; the columns "
            f"must be among {', '.join(sorted(EVENT_FIELDS))}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise BackfillError(f"{path}: CSV header names {repeated[0]!r} more than once")
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise BackfillError(
            f"{path}: CSV header lacks the required column {missing[0]!r} "
            f"(required: {', '.join(REQUIRED_FIELDS)})"
        )
    return header


def _csv_event(header: list[str], row: list[str]) -> dict[str, Any] | InputError:
    if len(row) != len(header):
        return InputError(
            "invalid_csv",
            f"row has {len(row)} fields, the header has {len(header)}",
            None,
        )
    event: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if cell == "":
            continue  # an empty cell is an absent field
        if name == "quantity":
            try:
                event[name] = _csv_quantity(cell)
            except JsonBodyError as exc:  # e.g. more digits than Python reads
                return InputError("invalid_value", f"quantity: {exc}", "quantity")
        elif name == "meta":
            try:
                event[name] = parse_json_exact(cell.encode("utf-8", "surrogatepass"))
            except JsonBodyError as exc:
                return InputError("invalid_json", f"meta: {exc}", "meta")
        else:
            event[name] = cell
    return event


def read_csv(
    stream: IO[bytes], position: Position, path: str, skip: int = 0
) -> Iterator[tuple[int, Record | None]]:
    """(records so far, record) per CSV row after the header; as `read_jsonl` otherwise."""
    bad_utf8 = False

    def lines() -> Iterator[str]:
        nonlocal bad_utf8
        for raw in stream:
            position.bytes += len(raw)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_utf8 = True
                yield raw.decode("utf-8", "replace")

    reader = csv.reader(lines(), strict=True)
    try:
        header = _csv_header(next(reader, None), path)
        count = 0
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                value: Any = InputError("invalid_csv", f"row is not valid CSV: {exc}", None)
                row = None
            line, start = start, reader.line_num + 1
            if row is not None and not any(cell.strip() for cell in row):
                bad_utf8 = False
                continue  # a blank line
            count += 1
            if count <= skip:
                bad_utf8 = False
                yield count, None
                continue
            if bad_utf8:
                value = InputError("invalid_json", "line is not UTF-8 text", None)
                bad_utf8 = False
            elif row is not None:
                value = _csv_event(header, row)
            yield count, Record(line, value)
    except csv.Error as exc:  # the header itself
        raise BackfillError(f"{path}: the CSV header is not valid CSV: {exc}") from None
