"""Background reconciliation runs: one queued run per tenant, a fixed number of threads.

`POST /v1/reconciliation/run` does not reconcile in the request. It asks
`RunExecutor.submit(tenant)`, which

- records a run in `reconciliation_runs` (status `queued`), or, when the tenant already
  has a run queued or running, returns that one: duplicates coalesce, so a tenant that
  floods the endpoint costs one run, not one per request (a partial unique index makes
  this hold across API processes too);
- hands a new run to a queue served by `RECONCILIATION_THREADS` threads. There is never
  one thread per request, and the queue holds at most one entry per tenant.

The threads reconcile on the background pool (`BACKGROUND_POOL_MAX_SIZE` connections,
separate from the request pool), and the reconciler never holds a connection across a
Stripe call, so a hanging Stripe neither takes connections nor starves ingest and
reads; it only keeps the run `running` until the calls time out (`STRIPE_TIMEOUT_S`)
and the gateway's retries give up.

Statuses: `queued` -> `running` -> `done` (with the reports made) or `failed` (with
`error_code` and `error`). The executing process refreshes `heartbeat_at` every few
seconds; a queued or running run whose heartbeat is older than `STALE_AFTER_S` (its
process died) is failed as `abandoned` the next time that tenant asks for a run.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stripemeter.config import Settings
from stripemeter.db.pool import Pool
from stripemeter.errors import ReconciliationError, ShuttingDown
from stripemeter.reconciler.engine import reconcile
from stripemeter.reconciler.reports import report_json
from stripemeter.stripe.gateway import StripeGateway

log = logging.getLogger("stripemeter.reconciler.runs")

RunStatus = Literal["queued", "running", "done", "failed"]
ACTIVE = ("queued", "running")
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0

_COLUMNS = (
    "id, tenant_id, status, requested_at, started_at, finished_at, report_count, reports,"
    " error_code, error"
)


@dataclass(frozen=True)
class Run:
    """One row of `reconciliation_runs`."""

    id: UUID
    tenant_id: str
    status: RunStatus
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    report_count: int | None
    reports: list[dict[str, Any]] | None
    error_code: str | None
    error: str | None

    @property
    def finished(self) -> bool:
        """Whether the run is over (done or failed)."""
        return self.status not in ACTIVE


def _run(row: dict[str, Any]) -> Run:
    return Run(**row)


def get_run(conn: psycopg.Connection, run_id: UUID) -> Run | None:
    """The run with this id, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM reconciliation_runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
    conn.commit()
    return None if row is None else _run(row)


def enqueue(conn: psycopg.Connection, tenant_id: str) -> tuple[Run, bool]:
    """(the tenant's queued or running run, whether this call created it).

    A run abandoned by a dead process (stale heartbeat) is failed first, so it cannot
    block the tenant's runs forever.
    """
    for _ in range(5):
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "UPDATE reconciliation_runs SET status = 'failed', finished_at = now(),"
                " error_code = 'abandoned', error = 'the process running it stopped'"
                " WHERE tenant_id = %s AND status IN ('queued', 'running')"
                " AND heartbeat_at < now() - make_interval(secs => %s)",
                (tenant_id, STALE_AFTER_S),
            )
            cur.execute(
                "INSERT INTO reconciliation_runs (id, tenant_id) VALUES (%s, %s)"
                " ON CONFLICT (tenant_id) WHERE status IN ('queued', 'running') DO NOTHING"
                f" RETURNING {_COLUMNS}",
                (uuid.uuid4(), tenant_id),
            )
            created = cur.fetchone()
            if created is not None:
                conn.commit()
                return _run(created), True
            cur.execute(
                f"SELECT {_COLUMNS} FROM reconciliation_runs"
                " WHERE tenant_id = %s AND status IN ('queued', 'running')",
                (tenant_id,),
            )
            active = cur.fetchone()
        conn.commit()
        if active is not None:
            return _run(active), False
        # The active run finished between the insert and the select: try again.
    raise RuntimeError(f"could not queue a reconciliation run for tenant {tenant_id}")


class RunExecutor:
    """A fixed set of threads running queued runs on the background pool.

    `submit` borrows one connection (from the pool given to it: the request's) for a few
    milliseconds; everything else happens on `background_pool`.
    """

    def __init__(
        self,
        background_pool: Pool,
        gateway: StripeGateway,
        settings: Settings,
        *,
        threads: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.pool = background_pool
        self.gateway = gateway
        self.settings = settings
        self.stop_event = stop or threading.Event()
        self._queue: queue.Queue[tuple[UUID, str] | None] = queue.Queue()
        self._local: set[UUID] = set()  # runs this process has queued or running
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"stripemeter-reconcile-{n}", daemon=True)
            for n in range(threads)
        ]
        self._threads.append(
            threading.Thread(target=self._heartbeat, name="stripemeter-reconcile-hb", daemon=True)
        )
        for thread in self._threads:
            thread.start()

    # -- requests ---------------------------------------------------------------

    def submit(self, conn: psycopg.Connection, tenant_id: str) -> tuple[Run, bool]:
        """Queue a run for the tenant, or return its queued/running one (coalesced)."""
        run, created = enqueue(conn, tenant_id)
        if created:
            with self._lock:
                self._local.add(run.id)
            self._queue.put((run.id, tenant_id))
        return run, created

    def pending_here(self, run_id: UUID) -> bool:
        """Whether this process has `run_id` queued or running (no database read).

        False means: finished, or another process's run; the row says which.
        """
        with self._lock:
            return run_id in self._local

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking runs; wait briefly for the threads (they are daemons)."""
        self.stop_event.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # -- threads ----------------------------------------------------------------

    def _work(self) -> None:
        while not self.stop_event.is_set():
            item = self._queue.get()
            if item is None:
                return
            run_id, tenant_id = item
            try:
                self._execute(run_id, tenant_id)
            except Exception:  # the row stays active and goes stale; keep serving
                log.exception("reconciliation run %s could not be recorded", run_id)
            finally:
                with self._lock:
                    self._local.discard(run_id)

    def _execute(self, run_id: UUID, tenant_id: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE reconciliation_runs SET status = 'running', started_at = now(),"
                " heartbeat_at = now() WHERE id = %s AND status = 'queued'",
                (run_id,),
            )
        outcome: tuple[RunStatus, list[dict[str, Any]] | None, str | None, str | None]
        try:
            reports = reconcile(self.pool, self.gateway, self.settings, tenant_id)
            epsilon = self.settings.RECONCILIATION_EPSILON
            outcome = ("done", [report_json(r, epsilon) for r in reports], None, None)
        except ReconciliationError as exc:
            refusal = "stripe_refused" if exc.refused else "stripe_unavailable"
            outcome = ("failed", None, refusal, str(exc))
        except ShuttingDown:
            # Not an outage and not a bug: the process stopped during a retry backoff.
            outcome = (
                "failed",
                None,
                "shutting_down",
                "the service stopped before the run finished; run it again",
            )
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            outcome = ("failed", None, "database_unavailable", f"database unavailable: {exc}")
        except Exception as exc:
            log.exception("reconciliation run %s failed", run_id)
            outcome = ("failed", None, "internal_error", f"{type(exc).__name__}: {exc}")
        status, made, code, error = outcome
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE reconciliation_runs SET status = %s, finished_at = now(),"
                " report_count = %s, reports = %s, error_code = %s, error = %s WHERE id = %s",
                (
                    status,
                    None if made is None else len(made),
                    None if made is None else Jsonb(made),
                    code,
                    error,
                    run_id,
                ),
            )

    def _heartbeat(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_S):
            with self._lock:
                mine = list(self._local)
            if not mine:
                continue
            try:
                with self.pool.connection() as conn:
                    conn.execute(
                        "UPDATE reconciliation_runs SET heartbeat_at = now()"
                        " WHERE id = ANY(%s) AND status IN ('queued', 'running')",
                        (mine,),
                    )
            except Exception as exc:  # the database is down: the runs may go stale
                log.warning("reconciliation heartbeat failed: %s", exc)
