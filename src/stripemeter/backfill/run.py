"""One backfill run: read the file in batches, validate, store exactly once, report.

Each batch goes through what `POST /v1/events/ingest` uses: `validation.EventRules`
built from the same settings (STRICT_TENANT_ID_UUID included), the API's clock rule,
then `ledger.ingest` without a header key, so an event's key is its body
`idempotencyKey` or its content hash. A line also sent through the API, or read again
by a rerun, is therefore a duplicate. A bad line is rejected
(line number, the API's error code and message) and the run goes on.

After each committed batch the checkpoint is rewritten; a rerun with it skips the
stored records and continues the counts. Batch request ids are `bf_<run id>_<first
record>`: after a crash between a batch's commit and its checkpoint, the resumed run
finds that batch's events by their request id and counts them as the accepted lines
they were, so the final counts are exact, not merely consistent. A finished run
removes its checkpoint: a rerun then reads everything again and accepts 0.

`--dry-run` validates and counts without writing anything: it reads the ledger to
tell new events from stored ones and remembers every key of the file to spot repeats.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg

from stripemeter.backfill import checkpoint as checkpoints
from stripemeter.backfill.checkpoint import Checkpoint, FileIdentity
from stripemeter.backfill.readers import Position, Record, read_csv, read_jsonl
from stripemeter.clocks import ClockRereads
from stripemeter.db.pool import Pool
from stripemeter.errors import BackfillError, InputError
from stripemeter.ingest import ledger
from stripemeter.ingest.clock_bound import rejudge_future_events
from stripemeter.ingest.validation import EventRules, ValidEvent

# Rejected lines kept for the summary, the checkpoint and --rejects; beyond this the
# counts stay exact but the list is cut (the summary says so).
MAX_KEPT_REJECTS = 10_000
TERMINAL_REJECTS = 20
SCOPE = "backfill"

# One tenant at a time: the tenant parameter takes the column's type, whatever it is.
# `event_keys` holds every key ever accepted (also those of detached ledger months).
EXISTING_KEYS = (
    "SELECT idempotency_key FROM event_keys WHERE tenant_id = %s AND idempotency_key = ANY(%s)"
)
# Which of these keys a given batch stored: one primary-key probe per key (and monthly
# partition), never a scan of the ledger by request_id, which has no index.
STORED_BY_REQUEST = (
    "SELECT idempotency_key FROM events WHERE tenant_id = %s AND idempotency_key = ANY(%s)"
    " AND request_id = %s"
)


@dataclass(frozen=True)
class Options:
    """What the command line asked for, checked."""

    path: Path
    format: str
    rules: EventRules  # the API's: EventRules.from_settings
    batch_size: int
    checkpoint_path: Path
    dry_run: bool = False
    restart: bool = False
    # Compared with `ValidEvent.tenant_id`, so whatever type validation gives it.
    tenant: Any = None
    progress: bool = False


@dataclass
class Summary:
    """What a run did; counts include those of the runs it resumed."""

    file: str
    format: str
    dry_run: bool
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    last_line: int = 0
    resumed_at_line: int | None = None
    elapsed_s: float = 0.0
    lines_this_run: int = 0

    @property
    def lines(self) -> int:
        """Records counted (blank lines are not records)."""
        return self.accepted + self.duplicates + self.rejected

    def to_json(self) -> dict[str, Any]:
        """The summary as `--json` prints it."""
        return {
            "file": self.file,
            "format": self.format,
            "dryRun": self.dry_run,
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejects": self.rejects,
            "rejectsComplete": len(self.rejects) == self.rejected,
            "resumedAtLine": self.resumed_at_line,
            "elapsedSeconds": round(self.elapsed_s, 3),
            "linesPerSecond": round(self.rate),
        }

    @property
    def rate(self) -> float:
        """Lines per second in this run."""
        return self.lines_this_run / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def render(self, rejects_file: str | None) -> str:
        """The summary for a person: counts, then at most 20 rejected lines."""
        verb = "would be " if self.dry_run else ""
        head = (
            f"{'dry run (nothing was written): ' if self.dry_run else ''}backfill of "
            f"{self.file}: {self.lines:,} lines: {self.accepted:,} {verb}accepted, "
            f"{self.duplicates:,} duplicates, {self.rejected:,} rejected "
            f"({self.elapsed_s:.1f} s, {self.rate:,.0f} lines/s"
            + (f"; resumed after line {self.resumed_at_line:,}" if self.resumed_at_line else "")
            + ")"
        )
        lines = [head]
        if self.rejected:
            lines.append("rejected lines:")
            for reject in self.rejects[:TERMINAL_REJECTS]:
                lines.append(f"  line {reject['line']}: {reject['code']}: {reject['message']}")
            more = self.rejected - min(len(self.rejects), TERMINAL_REJECTS)
            if more:
                where = f"{rejects_file} has them" if rejects_file else "--rejects FILE writes them"
                if len(self.rejects) < self.rejected:
                    where += f" (the first {len(self.rejects):,})"
                lines.append(f"  ... and {more:,} more ({where})")
        return "\n".join(lines)


class Progress:
    """A progress line on stderr: lines/s, counts, and an ETA from the bytes read."""

    def __init__(self, stream: IO[str], enabled: bool, total_bytes: int) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.total = total_bytes
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, summary: Summary, position: Position, force: bool = False) -> None:
        """Show the progress, at most 4 times a second on a terminal, once a second else."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.25 if self.tty else 1.0):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = summary.lines_this_run / elapsed
        text = (
            f"{summary.lines:,} lines  {rate:,.0f} lines/s  accepted {summary.accepted:,}  "
            f"duplicates {summary.duplicates:,}  rejected {summary.rejected:,}"
        )
        if self.total > 0:
            done = min(position.bytes / self.total, 1.0)
            text += f"  {done:.0%}"
            if 0 < done < 1:
                text += f"  ETA {elapsed * (1 - done) / done:,.0f} s"
        self.stream.write(f"\r{text}\x1b[K" if self.tty else text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the progress line so the summary starts on its own."""
        if self.enabled and self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _records(
    options: Options, stream: IO[bytes], position: Position, skip: int
) -> Iterator[tuple[int, Record | None]]:
    if options.format == "csv":
        return read_csv(stream, position, str(options.path), skip)
    return read_jsonl(stream, position, skip)


def _batches(
    records: Iterator[tuple[int, Record | None]], size: int
) -> Iterator[tuple[int, list[Record]]]:
    """(records consumed after the batch, the batch's records), skipped records omitted."""
    batch: list[Record] = []
    count = 0
    for count, record in records:
        if record is None:
            continue
        batch.append(record)
        if len(batch) == size:
            yield count, batch
            batch = []
    if batch:
        yield count, batch


class Run:
    """The state of one backfill run; `execute` does it."""

    def __init__(self, options: Options, pool: Pool | None) -> None:
        self.options = options
        self.pool = pool
        self.summary = Summary(str(options.path), options.format, options.dry_run)
        self.checkpoint: Checkpoint | None = None
        # The batch in flight when an earlier run died: its request id, the records it
        # covered, and the keys of that span this run has already seen (any later line
        # with one of them is a duplicate, whoever stored it).
        self.lost_request_id: str | None = None
        self.lost_until_record = 0
        self.lost_settled: set[tuple[Any, str]] = set()
        self.seen: set[tuple[Any, str]] = set()  # dry run only

    # -- checkpoint --------------------------------------------------------------

    def _start(self, identity: FileIdentity) -> int:
        """Load or create the checkpoint; the number of records already stored."""
        options = self.options
        path = options.checkpoint_path
        found = checkpoints.load(path)
        if found is not None and options.restart:
            path.unlink(missing_ok=True)
            found = None
        if found is not None:
            changed = found.file.difference(identity)
            if changed is None and found.format != options.format:
                changed = f"it was read as {found.format}, not {options.format}"
            if changed is None and found.tenant != _text(options.tenant):
                changed = f"it was run with --tenant {found.tenant or '(none)'}"
            if changed:
                raise BackfillError(
                    f"checkpoint {path} does not match {options.path}: {changed}; pass "
                    "--restart to start over (stored lines then count as duplicates) or "
                    "--checkpoint PATH for another checkpoint"
                )
            self.checkpoint = found
            summary = self.summary
            summary.accepted, summary.duplicates = found.accepted, found.duplicates
            summary.rejected, summary.rejects = found.rejected, list(found.rejects)
            summary.last_line = found.line
            summary.resumed_at_line = found.line
            self.lost_request_id = self._request_id(found.records)
            self.lost_until_record = found.records + found.batch_size
            return found.records
        self.checkpoint = Checkpoint(
            file=identity,
            format=options.format,
            tenant=_text(options.tenant),
            run_id=os.urandom(6).hex(),
            batch_size=options.batch_size,
        )
        # Written before the first batch, so the run id survives a crash in it.
        checkpoints.save(path, self.checkpoint)
        return 0

    def _request_id(self, first_record: int) -> str:
        assert self.checkpoint is not None
        return f"bf_{self.checkpoint.run_id}_{first_record}"

    def _stored_by_lost_batch(
        self, valid: list[tuple[int, ValidEvent]], first_record: int
    ) -> set[tuple[Any, str]]:
        """The (tenant, key) of these events that the lost batch itself stored, not yet
        counted; empty past the records that batch covered."""
        if self.lost_request_id is None or first_record >= self.lost_until_record:
            return set()
        assert self.pool is not None
        by_tenant: dict[Any, list[str]] = {}
        for _, event in valid:
            key = (event.tenant_id, ledger.effective_key(event, None, 0))
            if key not in self.lost_settled:
                by_tenant.setdefault(key[0], []).append(key[1])
        stored: set[tuple[Any, str]] = set()
        with self.pool.connection() as conn:
            for tenant, tenant_keys in by_tenant.items():
                rows = conn.execute(
                    STORED_BY_REQUEST, (tenant, tenant_keys, self.lost_request_id)
                ).fetchall()
                stored.update((tenant, row[0]) for row in rows)
        return stored

    def _commit_point(self, records: int, line: int) -> None:
        checkpoint = self.checkpoint
        assert checkpoint is not None
        summary = self.summary
        checkpoint.records, checkpoint.line = records, line
        checkpoint.accepted, checkpoint.duplicates = summary.accepted, summary.duplicates
        checkpoint.rejected, checkpoint.rejects = summary.rejected, summary.rejects
        checkpoint.batch_size = self.options.batch_size
        checkpoints.save(self.options.checkpoint_path, checkpoint)

    # -- batches -----------------------------------------------------------------

    def _reject(self, line: int, error: InputError) -> None:
        self.summary.rejected += 1
        if len(self.summary.rejects) < MAX_KEPT_REJECTS:
            self.summary.rejects.append(
                {"line": line, "code": error.code, "field": error.field, "message": error.message}
            )

    def _validate(self, batch: list[Record]) -> list[tuple[int, ValidEvent]]:
        """The batch's valid events with their line numbers; the others rejected.

        A future-dated line of a customer on a test clock is judged on the clock's known
        frozen_time, as the API does (`ingest.clock_bound`; no Stripe re-read here).
        """
        options = self.options
        now = datetime.now(UTC)

        validate = options.rules.validate
        lines: list[int] = []
        raws: list[Any] = []
        items: list[ValidEvent | InputError] = []
        for record in batch:
            value = record.value
            lines.append(record.line)
            raws.append(value)
            if isinstance(value, InputError):  # unreadable: stays rejected, in line order
                items.append(value)
                continue
            try:
                items.append(validate(value, now))
            except InputError as exc:
                items.append(exc)
        if self.pool is not None:
            rejudge_future_events(
                self.pool, lambda: None, ClockRereads(0), raws, items, validate, now
            )
        valid: list[tuple[int, ValidEvent]] = []
        for line, event in zip(lines, items, strict=True):
            if isinstance(event, InputError):
                self._reject(line, event)
                continue
            if options.tenant is not None and event.tenant_id != options.tenant:
                self._reject(
                    line,
                    InputError(
                        "forbidden_tenant",
                        f"tenantId: this backfill is restricted to tenant {options.tenant} "
                        f"(--tenant) and this line is for tenant {event.tenant_id}",
                        "tenantId",
                    ),
                )
                continue
            valid.append((line, event))
        return valid

    def _store(self, first_record: int, valid: list[tuple[int, ValidEvent]]) -> None:
        assert self.pool is not None
        items: list[ValidEvent | InputError] = [event for _, event in valid]
        # Probed before this batch stores anything under the same request id.
        lost = self._stored_by_lost_batch(valid, first_record)
        try:
            outcome = ledger.ingest(
                self.pool,
                items,
                request_id=self._request_id(first_record),
                header_key=None,
                scope=SCOPE,
                body_sha256="",
            )
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise BackfillError(
                f"the batch from line {valid[0][0]} to {valid[-1][0]} could not be stored "
                f"(nothing of it was): {reason}; run the same command again to resume"
            ) from exc
        accepted = outcome.accepted
        for (_, event), result in zip(valid, outcome.results, strict=True):
            key = (event.tenant_id, result["idempotencyKey"])
            # Stored by the very batch whose checkpoint a crash lost: accepted, once.
            if result["status"] == "duplicate" and key in lost:
                lost.discard(key)
                accepted += 1
            if first_record < self.lost_until_record:
                self.lost_settled.add(key)
        self.summary.accepted += accepted
        self.summary.duplicates += len(valid) - accepted

    def _count_dry(self, valid: list[tuple[int, ValidEvent]]) -> None:
        assert self.pool is not None
        keys = [(e.tenant_id, ledger.effective_key(e, None, 0)) for _, e in valid]
        fresh = [k for k in dict.fromkeys(keys) if k not in self.seen]
        stored: set[tuple[Any, str]] = set()
        by_tenant: dict[Any, list[str]] = {}
        for tenant, event_key in fresh:
            by_tenant.setdefault(tenant, []).append(event_key)
        if by_tenant:
            with self.pool.connection() as conn:
                for tenant, tenant_keys in by_tenant.items():
                    rows = conn.execute(EXISTING_KEYS, (tenant, tenant_keys)).fetchall()
                    stored.update((tenant, row[0]) for row in rows)
        for key in keys:
            if key in self.seen or key in stored:
                self.summary.duplicates += 1
            else:
                self.summary.accepted += 1
            self.seen.add(key)

    def execute(self, progress_stream: IO[str] = sys.stderr) -> Summary:
        """Run the backfill to the end of the file and return its summary."""
        options = self.options
        started = time.monotonic()
        try:
            identity = FileIdentity.of(options.path)
            stream = options.path.open("rb")
        except OSError as exc:
            raise BackfillError(f"cannot read {options.path}: {exc.strerror}") from None
        with stream:
            skip = 0 if options.dry_run else self._start(identity)
            position = Position()
            progress = Progress(progress_stream, options.progress, identity.size)
            summary = self.summary
            first_record = skip
            try:
                for records, batch in _batches(
                    _records(options, stream, position, skip), options.batch_size
                ):
                    valid = self._validate(batch)
                    if valid and options.dry_run:
                        self._count_dry(valid)
                    elif valid:
                        self._store(first_record, valid)
                    summary.lines_this_run += len(batch)
                    summary.last_line = batch[-1].line
                    if not options.dry_run:
                        self._commit_point(records, summary.last_line)
                    first_record = records
                    summary.elapsed_s = time.monotonic() - started
                    progress.update(summary, position)
            finally:
                progress.update(self.summary, position, force=True)
                progress.finish()
        if not options.dry_run:
            options.checkpoint_path.unlink(missing_ok=True)  # done: nothing to resume
        summary.elapsed_s = time.monotonic() - started
        return summary


def _text(tenant: Any) -> str | None:
    return None if tenant is None else str(tenant)


def write_rejects(path: Path, summary: Summary) -> None:
    """The rejected lines as JSON lines (`line`, `code`, `field`, `message`), atomically."""
    text = "".join(json.dumps(reject) + "\n" for reject in summary.rejects)
    checkpoints.write_atomically(path, text)
