"""Group commit: the ingest requests of one API process stored together, one statement each group.

Every batch updates the same hot hour-bucket rows, so concurrent requests, each in its own
transaction, queue on the same row locks; one statement for many requests updates each
bucket row once and commits once. `GroupCommitter` owns that: request handlers `submit` a
`ledger.PreparedRequest` and await its result; writer threads take what is waiting, as a
group of at most `max_events` events (more only when one request alone is larger), after
waiting at most `max_wait_s` from the first one for others to join, and store it with
`ledger.store_group`.

What holds for a request is exactly what held when each request had its own transaction:

- it is answered only after its events are committed (the future resolves after COMMIT);
- a key that two requests of one group carry is inserted once, for the earlier request,
  and the later one is told `duplicate`;
- an Idempotency-Key reused with another body is refused (409) for that request only;
- when the group's statement fails, each request is retried alone, so an error reaches
  only the request it belongs to and the others still succeed;
- a client that goes away before its group forms is dropped (nothing stored); once the
  group forms it is stored or not as the group's commit decides; either way a retry with
  the same keys says which (`accepted` or `duplicate`).

Handlers awaiting `store` are woken once per group and event loop, not once per request.

On `close`, requests already queued are still stored; later ones get `ShuttingDown`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass

from stripemeter.db.pool import Pool
from stripemeter.errors import ShuttingDown
from stripemeter.ingest import ledger
from stripemeter.ingest.ledger import Key, PreparedRequest

log = logging.getLogger("stripemeter.ingest")


@dataclass
class _Waiting:
    request: PreparedRequest
    future: concurrent.futures.Future[set[Key]]
    # `store`'s awaiting side: the handler's event loop and its future, resolved from the
    # concurrent future in one loop wake-up per group (not one per request).
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[set[Key]] | None = None


def _deliver(group: list[_Waiting]) -> None:
    """On a handler's event loop: hand each request's outcome to its awaiting handler."""
    for waiting in group:
        waiter = waiting.waiter
        if waiter is None or waiter.done():  # its handler was cancelled meanwhile
            continue
        error = waiting.future.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(waiting.future.result())


class GroupCommitter:
    """Stores the requests submitted to it in groups, on `writers` threads."""

    def __init__(
        self,
        pool: Pool,
        *,
        max_events: int = 1000,
        max_wait_s: float = 0.0,
        writers: int = 1,
    ) -> None:
        self.pool = pool
        self.max_events = max_events
        self.max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"ingest-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        self._closing = False
        self._lock = threading.Lock()
        self.groups = 0  # groups stored, for tests and metrics
        self.grouped_requests = 0

    def start(self) -> None:
        """Start the writer threads (requests submitted before wait for this)."""
        for thread in self._threads:
            thread.start()

    def submit(self, request: PreparedRequest) -> concurrent.futures.Future[set[Key]]:
        """Queue `request`; the future gives the keys inserted, or the request's error."""
        return self._enqueue(_Waiting(request, concurrent.futures.Future()))

    def _enqueue(self, waiting: _Waiting) -> concurrent.futures.Future[set[Key]]:
        with self._lock:
            if self._closing:
                raise ShuttingDown("the API is shutting down; retry the request")
            self._queue.put(waiting)
        return waiting.future

    async def store(self, request: PreparedRequest) -> set[Key]:
        """Submit `request` and wait for its group's commit without blocking the loop.

        A handler cancelled while it waits (its client went away) cancels the request:
        before its group forms nothing is stored; after, the commit decides.
        """
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, concurrent.futures.Future(), loop, loop.create_future())
        future = self._enqueue(waiting)
        assert waiting.waiter is not None
        try:
            return await waiting.waiter
        except asyncio.CancelledError:
            future.cancel()  # refused once its group has formed (running futures stay)
            raise

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests, store every queued one, stop the threads."""
        with self._lock:
            self._closing = True
            for _ in self._threads:
                self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            if not first.future.set_running_or_notify_cancel():
                continue
            group, stopping = self._gather(first)
            self._store(group)

    def _gather(self, first: _Waiting) -> tuple[list[_Waiting], bool]:
        """The group that starts with `first`; True when a stop marker was taken."""
        group = [first]
        events = len(first.request.unique)
        deadline = time.monotonic() + self.max_wait_s
        while events < self.max_events:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(remaining > 0, max(remaining, 0.0))
            except queue.Empty:
                break
            if item is None:
                return group, True
            if not item.future.set_running_or_notify_cancel():
                continue  # its client gave up before the group formed: nothing stored
            group.append(item)
            events += len(item.request.unique)
        return group, False

    def _store(self, group: list[_Waiting]) -> None:
        try:
            results = ledger.store_group(self.pool, [w.request for w in group])
        except BaseException as exc:  # a bug or an interrupt: every waiter must hear it
            log.exception("ingest group of %d requests failed", len(group))
            results = [exc] * len(group)
        with self._lock:  # several writer threads may finish groups at once
            self.groups += 1
            self.grouped_requests += len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Waiting]] = {}
        for waiting, result in zip(group, results, strict=True):
            # Running futures cannot be cancelled: every waiter hears its group's outcome.
            if isinstance(result, BaseException):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
            if waiting.loop is not None:
                by_loop.setdefault(waiting.loop, []).append(waiting)
        for loop, waiting_there in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, waiting_there)
            except RuntimeError:  # that loop is closed: nobody is awaiting there any more
                log.debug("an ingest group finished after its event loop closed")
