"""`stripemeter backfill` as users run it: a real subprocess on a real PostgreSQL.

The files are generated with a known fate for every line (accepted, duplicate, or
rejected with a given code), so the summary, the rejected line numbers and the ledger
(events and hour buckets) are checked exactly, including after kill -9 and a resume.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.stripemeter.conftest import start_api

SCRIPT = Path(sys.executable).with_name("stripemeter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "stripemeter.cli"]
TENANTS = ("8f2c7b1e-0000-4000-8000-0000000000a1", "8f2c7b1e-0000-4000-8000-0000000000b2")
METRICS = ("api_calls", "storage_gb", "seats")
BASE_TS = datetime(2026, 1, 1, tzinfo=UTC)
BAD_KINDS = ("not_json", "missing_field", "negative", "bad_ts", "unknown_field")
BAD_CODES = {
    "not_json": "invalid_json",
    "missing_field": "missing_field",
    "negative": "invalid_value",
    "bad_ts": "invalid_value",
    "unknown_field": "unknown_field",
}


@pytest.fixture
def home() -> Iterator[Path]:
    """A short working directory for the command (and its files)."""
    path = Path(tempfile.mkdtemp(prefix="smbf", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(db_url: str, home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BYPASS_AUTH") and not k.startswith("STRIPEMETER_")
    }
    env.update(STRIPEMETER_HOME=str(home), DATABASE_URL=db_url)
    return env


def backfill(db_url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `stripemeter backfill *args` to the end."""
    return subprocess.run(
        [*COMMAND, "backfill", *args],
        cwd=home,
        env=_env(db_url, home),
        capture_output=True,
        text=True,
        timeout=600,
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@dataclass
class History:
    """A generated file's lines and what must become of each one."""

    lines: list[str] = field(default_factory=list)
    fates: list[str] = field(default_factory=list)  # accepted, duplicate or a reject code
    stored: list[dict[str, Any]] = field(default_factory=list)  # accepted events, in order

    @property
    def counts(self) -> tuple[int, int, int]:
        accepted = self.fates.count("accepted")
        duplicates = self.fates.count("duplicate")
        return accepted, duplicates, len(self.fates) - accepted - duplicates

    def rejects(self, upto: int | None = None) -> list[tuple[int, str]]:
        return [
            (n, fate)
            for n, fate in enumerate(self.fates[:upto], start=1)
            if fate not in ("accepted", "duplicate")
        ]

    def write(self, path: Path) -> Path:
        path.write_text("".join(line + "\n" for line in self.lines), encoding="utf-8")
        return path


def _good(rng: random.Random, i: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "tenantId": TENANTS[i % 2],
        "metric": METRICS[i % 3],
        "customerRef": f"cus_{rng.randrange(40)}",
        "quantity": rng.choice([rng.randrange(1, 1000), Decimal(rng.randrange(1, 10**6)) / 1000]),
        "ts": (BASE_TS + timedelta(seconds=rng.randrange(30 * 86400), microseconds=i))
        .isoformat()
        .replace("+00:00", "Z"),
    }
    if i % 2 == 0:
        event["idempotencyKey"] = f"evt-{i}"
    if i % 7 == 0:
        event["meta"] = {"region": "eu", "weight": Decimal("1.50")}
    return event


def _json_exact(value: Any) -> str:
    """JSON with Decimals written as numbers (as a client would send them)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_json_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def _rewritten(event: dict[str, Any]) -> dict[str, Any]:
    """The same content written another way: keys reordered, 2 as 2.0, Z as +00:00."""
    copy = dict(reversed(list(event.items())))
    copy["quantity"] = Decimal(copy["quantity"]).quantize(Decimal("0.0001"))
    copy["ts"] = copy["ts"].replace("Z", "+00:00")
    return copy


def _bad(kind: str, rng: random.Random, i: int) -> str:
    event = _good(rng, i)
    event.pop("idempotencyKey", None)
    if kind == "not_json":
        return '{"tenantId": "' + event["tenantId"] + '", "metric": '
    if kind == "missing_field":
        del event["customerRef"]
    elif kind == "negative":
        event["quantity"] = -rng.randrange(1, 50)
    elif kind == "bad_ts":
        event["ts"] = "yesterday at noon"
    else:
        event["customerId"] = "cus_1"
    return _json_exact(event)


def generate(total: int, duplicate_share: float, bad_share: float, seed: int = 13) -> History:
    """`total` lines: that share of repeats of earlier lines, that share of bad lines."""
    rng = random.Random(seed)
    duplicates, bad = round(total * duplicate_share), round(total * bad_share)
    kinds = ["good"] * (total - duplicates - bad) + ["dup"] * duplicates + ["bad"] * bad
    rng.shuffle(kinds)
    history = History()
    for n, kind in enumerate(kinds):
        if kind == "dup" and not history.stored:
            kind = "good"  # nothing to repeat yet; the counts are taken from the fates
        if kind == "good":
            event = _good(rng, n)
            history.stored.append(event)
            history.lines.append(_json_exact(event))
            history.fates.append("accepted")
        elif kind == "dup":
            original = rng.choice(history.stored)
            if "idempotencyKey" in original:  # same key, other content: the key decides
                repeat = dict(original, quantity=999_999)
            else:
                repeat = _rewritten(original)
            history.lines.append(_json_exact(repeat))
            history.fates.append("duplicate")
        else:
            bad_kind = BAD_KINDS[n % len(BAD_KINDS)]
            history.lines.append(_bad(bad_kind, rng, n))
            history.fates.append(BAD_CODES[bad_kind])
    return history


def _hour(ts: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def assert_ledger_holds(db_url: str, history: History) -> None:
    """events has exactly the accepted events; each hour bucket their exact totals."""
    buckets: dict[tuple[str, str, str, datetime], list[Decimal]] = defaultdict(list)
    for event in history.stored:
        key = (event["tenantId"], event["metric"], event["customerRef"], _hour(event["ts"]))
        buckets[key].append(Decimal(event["quantity"]))
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT count(*), sum(quantity) FROM events").fetchone()
        rows = conn.execute(
            "SELECT tenant_id::text, metric, customer_ref, hour_start, total, event_count,"
            " max_value FROM usage_buckets"
        ).fetchall()
        keyed = conn.execute(
            "SELECT idempotency_key, quantity FROM events WHERE idempotency_key NOT LIKE '~%'"
        ).fetchall()
    assert stored == (len(history.stored), sum(Decimal(e["quantity"]) for e in history.stored))
    assert {(r[0], r[1], r[2], r[3]): (r[4], r[5], r[6]) for r in rows} == {
        k: (sum(v), len(v), max(v)) for k, v in buckets.items()
    }
    expected_keyed = {
        e["idempotencyKey"]: Decimal(e["quantity"]) for e in history.stored if "idempotencyKey" in e
    }
    assert dict(keyed) == expected_keyed  # a repeated key never replaced the first event


def test_a_100000_line_file_with_duplicates_and_bad_lines_is_counted_exactly_and_once(
    db_url: str, home: Path
) -> None:
    history = generate(100_000, 0.05, 0.01)
    assert history.counts == (94_000, 5_000, 1_000)
    path = history.write(home / "history.jsonl")
    started = time.monotonic()
    first = backfill(db_url, home, str(path), "--json", "--rejects", str(home / "rejects.jsonl"))
    wall = time.monotonic() - started
    summary = summary_of(first)
    assert first.returncode == 3, first.stderr
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (
        94_000,
        5_000,
        1_000,
    )
    assert summary["lines"] == 100_000 and summary["rejectsComplete"] is True
    assert [(r["line"], r["code"]) for r in summary["rejects"]] == history.rejects()
    written = [json.loads(line) for line in (home / "rejects.jsonl").read_text().splitlines()]
    assert written == summary["rejects"]
    assert_ledger_holds(db_url, history)
    assert not (home / "history.jsonl.stripemeter-checkpoint").exists()
    print(f"\n100,000 lines in {wall:.1f} s wall, {summary['linesPerSecond']} lines/s")

    rerun = summary_of(backfill(db_url, home, str(path), "--json"))
    assert (rerun["accepted"], rerun["duplicates"], rerun["rejected"]) == (0, 99_000, 1_000)
    assert_ledger_holds(db_url, history)


def _csv_cell(value: Any) -> str:
    if isinstance(value, dict):
        text = _json_exact(value)
        return '"' + text.replace('"', '""') + '"'
    return str(value)


CSV_FIELDS = ("tenantId", "metric", "customerRef", "quantity", "ts", "idempotencyKey", "meta")


def _csv_line(event: dict[str, Any]) -> str:
    return ",".join(_csv_cell(event[name]) if name in event else "" for name in CSV_FIELDS)


def test_a_csv_file_is_loaded_exactly_and_its_events_are_the_json_lines_events(
    db_url: str, home: Path
) -> None:
    history = generate(3_000, 0.05, 0.0, seed=7)
    csv_path = home / "history.csv"
    rows = []
    for line in history.lines:
        event = json.loads(line, parse_float=Decimal)
        rows.append(_csv_line(event))
    bad = [
        "8f2c7b1e-0000-4000-8000-0000000000a1,api_calls,cus_1,-1,2026-01-02T00:00:00Z,,",
        "8f2c7b1e-0000-4000-8000-0000000000a1,api_calls,cus_1,ten,2026-01-02T00:00:00Z,,",
        "8f2c7b1e-0000-4000-8000-0000000000a1,api_calls,cus_1,1.1234567,2026-01-02T00:00:00Z,,",
        "8f2c7b1e-0000-4000-8000-0000000000a1,api_calls,cus_1,1",
        '8f2c7b1e-0000-4000-8000-0000000000a1,api_calls,cus_1,1,2026-01-02T00:00:00Z,,"{oops}"',
        ",api_calls,cus_1,1,2026-01-02T00:00:00Z,,",
    ]
    csv_path.write_text(
        ",".join(CSV_FIELDS) + "\n" + "\n".join(rows[:1000] + bad + rows[1000:]) + "\n",
        encoding="utf-8",
    )
    result = backfill(db_url, home, str(csv_path), "--json", "--batch-size", "250")
    summary = summary_of(result)
    accepted, duplicates, _ = history.counts
    assert result.returncode == 3
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (
        accepted,
        duplicates,
        6,
    )
    # Header is line 1, so the bad rows are lines 1002-1007.
    assert [(r["line"], r["code"], r["field"]) for r in summary["rejects"]] == [
        (1002, "invalid_value", "quantity"),
        (1003, "invalid_type", "quantity"),
        (1004, "invalid_value", "quantity"),
        (1005, "invalid_csv", None),
        (1006, "invalid_json", "meta"),
        (1007, "missing_field", "tenantId"),
    ]
    assert summary["rejects"][0]["message"] == "quantity must be >= 0, got -1"
    assert_ledger_holds(db_url, history)

    # The same events as JSON lines are the same events: all duplicates.
    again = summary_of(backfill(db_url, home, str(history.write(home / "same.jsonl")), "--json"))
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 3_000, 0)


def _rolled_back(checkpoint: dict[str, Any], history: History, records: int) -> dict[str, Any]:
    """The checkpoint as it was written after `records` records (computed from the fates)."""
    fates = history.fates[:records]
    return dict(
        checkpoint,
        records=records,
        line=records,
        accepted=fates.count("accepted"),
        duplicates=fates.count("duplicate"),
        rejected=len(history.rejects(records)),
        rejects=[
            r for r in checkpoint["rejects"] if r["line"] <= records
        ],  # the prefix of the kept list
    )


@pytest.mark.parametrize(
    ("lose_last_checkpoint", "resume_batch"),
    [(False, 500), (True, 500), (False, 50), (True, 50)],
    ids=["kill", "kill-after-commit", "kill-smaller-batches", "kill-after-commit-smaller-batches"],
)
def test_kill_9_mid_run_then_a_resume_ends_with_the_exact_ledger_and_counts(
    db_url: str, home: Path, lose_last_checkpoint: bool, resume_batch: int
) -> None:
    history = generate(20_000, 0.05, 0.01, seed=3)
    path = history.write(home / "history.jsonl")
    checkpoint_path = home / "history.jsonl.stripemeter-checkpoint"
    process = subprocess.Popen(
        [*COMMAND, "backfill", str(path), "--batch-size", "200", "--json"],
        cwd=home,
        env=_env(db_url, home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if checkpoint_path.exists():
                state = json.loads(checkpoint_path.read_text())
                if state["records"] >= 4_000:
                    break
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    state = json.loads(checkpoint_path.read_text())
    assert 4_000 <= state["records"] < 20_000
    if lose_last_checkpoint:
        # The worst moment: the last batch committed, its checkpoint never written. Batch
        # request ids are `bf_<run>_<first record>`: roll back to the last committed one.
        with psycopg.connect(db_url) as conn:
            ids = conn.execute("SELECT DISTINCT request_id FROM events").fetchall()
        last_batch = max(int(row[0].rsplit("_", 1)[1]) for row in ids)
        assert last_batch >= state["records"] - 200
        state = _rolled_back(state, history, last_batch)
        checkpoint_path.write_text(json.dumps(state))
    with psycopg.connect(db_url) as conn:
        stored_before = conn.execute("SELECT count(*) FROM events").fetchone()
    assert stored_before is not None and stored_before[0] > 0

    # With smaller batches, several re-read batches cover what the lost one held.
    resumed = backfill(db_url, home, str(path), "--batch-size", str(resume_batch), "--json")
    summary = summary_of(resumed)
    assert resumed.returncode == 3
    assert summary["resumedAtLine"] == state["line"]
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == history.counts
    assert [(r["line"], r["code"]) for r in summary["rejects"]] == history.rejects()
    assert_ledger_holds(db_url, history)
    assert not checkpoint_path.exists()


def test_dry_run_counts_like_the_real_run_and_writes_nothing(db_url: str, home: Path) -> None:
    history = generate(2_000, 0.05, 0.01, seed=5)
    path = history.write(home / "history.jsonl")
    dry = backfill(db_url, home, str(path), "--dry-run", "--batch-size", "300")
    assert dry.returncode == 3
    assert dry.stdout.startswith(
        "dry run (nothing was written): backfill of "
        f"{path}: 2,000 lines: 1,880 would be accepted, 100 duplicates, 20 rejected"
    )
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM usage_buckets").fetchone() == (0,)
    assert sorted(p.name for p in home.iterdir()) == ["history.jsonl"]

    real = summary_of(backfill(db_url, home, str(path), "--json"))
    assert (real["accepted"], real["duplicates"], real["rejected"]) == (1_880, 100, 20)
    after = summary_of(backfill(db_url, home, str(path), "--json", "--dry-run"))
    assert after["dryRun"] is True
    assert (after["accepted"], after["duplicates"], after["rejected"]) == (0, 1_980, 20)


def test_the_terminal_summary_lists_the_first_20_rejected_lines_and_says_how_many_more(
    db_url: str, home: Path
) -> None:
    lines = (
        [
            _json_exact(
                {
                    "tenantId": TENANTS[0],
                    "metric": "api_calls",
                    "customerRef": "c",
                    "quantity": n,
                    "ts": "2026-01-01T00:00:00Z",
                }
            )
            for n in range(10)
        ]
        + ["[1, 2]"] * 25
        + ["", "   "]
    )
    (home / "f.jsonl").write_text("\n".join(lines) + "\n")
    result = backfill(db_url, home, "f.jsonl")
    assert result.returncode == 3
    out = result.stdout.splitlines()
    assert out[0].startswith(
        "backfill of f.jsonl: 35 lines: 10 accepted, 0 duplicates, 25 rejected"
    )
    assert out[1] == "rejected lines:"
    assert out[2] == "  line 11: invalid_type: event must be a JSON object, got array"
    assert len(out) == 2 + 20 + 1
    assert out[-1] == "  ... and 5 more (--rejects FILE writes them)"


def test_a_line_already_sent_through_the_api_is_a_duplicate(db_url: str, home: Path) -> None:
    with start_api(db_url) as api:
        events = [
            {
                "tenantId": api.tenant,
                "metric": "api_calls",
                "customerRef": "c1",
                "quantity": 2,
                "ts": "2026-02-01T10:00:00Z",
            },
            {
                "tenantId": api.tenant,
                "metric": "api_calls",
                "customerRef": "c1",
                "quantity": 3,
                "ts": "2026-02-01T10:00:00Z",
                "idempotencyKey": "order-7",
            },
        ]
        answer = api.post("/v1/events/ingest", json={"events": events})
        assert answer.status_code == 200 and answer.json()["accepted"] == 2
    extra = dict(events[0], customerRef="c2")
    (home / "f.jsonl").write_text("\n".join(json.dumps(e) for e in [*events, extra]) + "\n")
    result = backfill(db_url, home, "f.jsonl", "--json", "--tenant", api.tenant)
    summary = summary_of(result)
    assert result.returncode == 0
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (1, 2, 0)


def test_tenant_restricts_the_lines_and_others_are_rejected(db_url: str, home: Path) -> None:
    lines = [
        {
            "tenantId": t,
            "metric": "api_calls",
            "customerRef": "c",
            "quantity": 1,
            "ts": "2026-01-01T00:00:00Z",
        }
        for t in TENANTS
    ]
    (home / "f.jsonl").write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    summary = summary_of(backfill(db_url, home, "f.jsonl", "--json", "--tenant", TENANTS[0]))
    assert (summary["accepted"], summary["rejected"]) == (1, 1)
    assert summary["rejects"][0]["line"] == 2
    assert summary["rejects"][0]["code"] == "forbidden_tenant"
    assert f"restricted to tenant {TENANTS[0]}" in summary["rejects"][0]["message"]


def test_a_future_timestamp_is_rejected_by_the_api_rule(db_url: str, home: Path) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    event = {"tenantId": TENANTS[0], "metric": "m", "customerRef": "c", "quantity": 1, "ts": future}
    (home / "f.jsonl").write_text(json.dumps(event) + "\n")
    summary = summary_of(backfill(db_url, home, "f.jsonl", "--json"))
    assert summary["rejects"][0]["code"] == "future_timestamp"
    assert "(MAX_FUTURE_SKEW_SECONDS)" in summary["rejects"][0]["message"]


def test_a_changed_file_is_refused_against_its_checkpoint_unless_restarted(
    db_url: str, home: Path
) -> None:
    history = generate(500, 0.0, 0.0, seed=11)
    path = history.write(home / "h.jsonl")
    first = summary_of(backfill(db_url, home, str(path), "--json"))
    assert first["accepted"] == 500
    # A checkpoint left by a run of the earlier content, then the file grows.
    stale = {
        "kind": "stripemeter-backfill-checkpoint",
        "version": 1,
        "file": {
            "path": str(path.resolve()),
            "size": path.stat().st_size,
            "mtime_ns": path.stat().st_mtime_ns,
            "head_sha256": "0" * 64,
        },
        "format": "jsonl",
        "tenant": None,
        "run_id": "abc",
        "batch_size": 100,
        "records": 100,
        "line": 100,
        "accepted": 100,
        "duplicates": 0,
        "rejected": 0,
        "rejects": [],
    }
    checkpoint = home / "h.jsonl.stripemeter-checkpoint"
    checkpoint.write_text(json.dumps(stale))
    with path.open("a") as stream:
        stream.write(history.lines[0] + "\n")
    refused = backfill(db_url, home, str(path), "--json")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        f"error: checkpoint {checkpoint} does not match {path}: its size changed from "
        f"{stale['file']['size']} to {path.stat().st_size} bytes; pass --restart to start "
        "over (stored lines then count as duplicates) or --checkpoint PATH for another "
        "checkpoint"
    ]
    restarted = summary_of(backfill(db_url, home, str(path), "--json", "--restart"))
    assert (restarted["accepted"], restarted["duplicates"], restarted["resumedAtLine"]) == (
        0,
        501,
        None,
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--format", "xml", "f.jsonl"], 2, "argument --format: invalid choice: 'xml'"),
        (["--batch-size", "0", "f.jsonl"], 2, "argument --batch-size: must be at least 1, got 0"),
        (
            ["--tenant", "x" * 65, "f.jsonl"],
            2,
            "argument --tenant: --tenant must be 1 to 64 printable characters",
        ),
        (["--frobnicate", "f.jsonl"], 2, "unrecognized arguments: --frobnicate"),
        ([], 2, "the following arguments are required: FILE"),
        (["missing.jsonl"], 1, "error: missing.jsonl is not a file; pass the JSON-lines or CSV"),
        (["f.txt"], 1, "error: cannot tell the format of f.txt from its extension"),
        (["--batch-size", "5000", "f.jsonl"], 1, "error: --batch-size 5000 is over MAX_INGEST"),
        (["bad.csv"], 1, "error: bad.csv: CSV header column 'customer' is not an ingest field"),
        (["short.csv"], 1, "error: short.csv: CSV header lacks the required column 'ts'"),
    ],
    ids=[
        "format",
        "batch-size",
        "tenant",
        "unknown-option",
        "no-file",
        "missing-file",
        "extension",
        "batch-over-max",
        "csv-header",
        "csv-required",
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(
    db_url: str, home: Path, args: list[str], code: int, message: str
) -> None:
    for name in ("f.jsonl", "f.txt"):
        (home / name).write_text("{}\n")
    (home / "bad.csv").write_text("tenantId,metric,customer,quantity,ts\n")
    (home / "short.csv").write_text("tenantId,metric,customerRef,quantity\n")
    result = backfill(db_url, home, *args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert message in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1
    else:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(("stripemeter backfill: error: ", "stripemeter: error: "))
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


@pytest.mark.parametrize("resume_batch", [1000, 20], ids=["one-batch", "smaller-batches"])
def test_a_batch_the_database_refuses_stops_the_run_in_one_line_and_a_rerun_resumes(
    db_url: str, home: Path, resume_batch: int
) -> None:
    history = generate(1_000, 0.05, 0.01, seed=17)
    path = history.write(home / "h.jsonl")
    victim = history.stored[600]  # an accepted event in the batch of lines 601-800 or so
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.ts = '{victim['ts']}' THEN RAISE EXCEPTION 'disk full'; END IF;"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    stopped = backfill(db_url, home, str(path), "--batch-size", "200")
    assert stopped.returncode == 1 and stopped.stdout == ""
    (line,) = stopped.stderr.strip().splitlines()
    assert line.startswith("error: the batch from line ")
    assert "could not be stored (nothing of it was): " in line and "disk full" in line
    assert line.endswith("run the same command again to resume")
    state = json.loads((home / "h.jsonl.stripemeter-checkpoint").read_text())
    assert state["records"] % 200 == 0 and 0 < state["records"] < 1_000
    with psycopg.connect(db_url) as conn:
        conn.execute("DROP TRIGGER refuse ON events")
    # Smaller batches: the refused batch's span is re-read as several, the first of them
    # under the refused batch's request id; a key repeated inside that span is a duplicate.
    resumed = summary_of(
        backfill(db_url, home, str(path), "--batch-size", str(resume_batch), "--json")
    )
    assert resumed["resumedAtLine"] == state["records"]
    assert (resumed["accepted"], resumed["duplicates"], resumed["rejected"]) == history.counts
    assert_ledger_holds(db_url, history)


def test_progress_goes_to_stderr_with_rate_counts_and_eta(db_url: str, home: Path) -> None:
    history = generate(3_000, 0.0, 0.0, seed=19)
    path = history.write(home / "h.jsonl")
    result = backfill(db_url, home, str(path), "--progress", "--batch-size", "100")
    assert result.returncode == 0
    assert result.stdout.startswith(f"backfill of {path}: 3,000 lines: 3,000 accepted")
    first = result.stderr.splitlines()[0]
    assert " lines/s  accepted " in first and "  duplicates 0  rejected 0  " in first
    assert "%" in first
    quiet = backfill(db_url, home, str(path))  # not a terminal, no --progress: summary only
    assert quiet.stderr == ""


def test_ctrl_c_stops_with_130_and_says_how_to_resume(db_url: str, home: Path) -> None:
    history = generate(20_000, 0.0, 0.0, seed=23)
    path = history.write(home / "h.jsonl")
    checkpoint_path = home / "h.jsonl.stripemeter-checkpoint"
    # Once 2,000 events are stored, every further insert waits on an advisory lock the test
    # holds: the run is parked mid-file however fast or slow this machine is, so the signal
    # cannot arrive after the run has finished (a race that once let it exit 0 under load).
    gate = psycopg.connect(db_url, autocommit=True)
    gate.execute("SELECT pg_advisory_lock(7714)")
    gate.execute(
        "CREATE FUNCTION park() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF (SELECT count(*) FROM events) >= 2000 THEN"
        " PERFORM pg_advisory_lock_shared(7714); PERFORM pg_advisory_unlock_shared(7714);"
        " END IF; RETURN NULL; END $$"
    )
    gate.execute(
        "CREATE TRIGGER park BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION park()"
    )
    try:
        process = subprocess.Popen(
            [*COMMAND, "backfill", str(path), "--batch-size", "200"],
            cwd=home,
            env=_env(db_url, home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        parked = False
        while not parked and time.monotonic() < deadline and process.poll() is None:
            parked = bool(
                gate.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND objid = 7714 AND NOT granted"
                ).fetchone()[0]  # type: ignore[index]
            )
            time.sleep(0.01)
        assert parked, "the backfill never reached the parked insert"
        assert json.loads(checkpoint_path.read_text())["records"] == 2_000
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        gate.execute("SELECT pg_advisory_unlock(7714)")
        gate.execute("DROP TRIGGER IF EXISTS park ON events")
        gate.close()
    assert process.returncode == 130 and out == ""
    (line,) = err.strip().splitlines()
    assert line == "backfill interrupted after line 2,000; run the same command again to resume"
    resumed = summary_of(backfill(db_url, home, str(path), "--json"))
    assert resumed["resumedAtLine"] == 2_000
    assert (resumed["accepted"], resumed["duplicates"]) == (20_000, 0)
    assert_ledger_holds(db_url, history)


def test_strict_tenant_ids_hold_for_the_backfill_as_for_the_api(db_url: str, home: Path) -> None:
    lines = [
        {
            "tenantId": t,
            "metric": "m",
            "customerRef": "c",
            "quantity": 1,
            "ts": "2026-01-01T00:00:00Z",
        }
        for t in ("acme", TENANTS[0])
    ]
    (home / "f.jsonl").write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    result = subprocess.run(
        [*COMMAND, "backfill", "f.jsonl", "--json"],
        cwd=home,
        env={**_env(db_url, home), "STRICT_TENANT_ID_UUID": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = summary_of(result)
    assert (summary["accepted"], summary["rejected"]) == (1, 1)
    assert (summary["rejects"][0]["line"], summary["rejects"][0]["code"]) == (1, "invalid_value")
    assert "STRICT_TENANT_ID_UUID" in summary["rejects"][0]["message"]
