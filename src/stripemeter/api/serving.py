"""How `stripemeter api` runs uvicorn: a header size limit, and children that die with it.

**Header limit.** uvicorn's httptools protocol has no limit on request headers (8 MB
were accepted and parsed). `LimitedHttpToolsProtocol` counts the bytes of a request
head while it is still incomplete and, past `MAX_HEADER_BYTES` (64 KiB, well above
any real client and the 8-16 KiB most proxies allow), answers `431 Request Header
Fields Too Large` with the usual JSON error and closes the connection. Without
httptools, the h11 protocol gets the same limit through `h11_max_incomplete_event_size`.

**One write per response.** uvicorn writes a response's head and its body with two
`transport.write` calls: two `send` system calls and two loopback segments for every
small JSON answer, a fifth of the API's CPU at one event per request (py-spy).
`CoalescingTransport` collects a connection's writes and sends them as one when the
event loop next runs its callbacks, which is after the handler has sent both (uvicorn's
`send` does not yield for a small answer); `close` sends what is collected first.

**Children die with the supervisor.** `stripemeter api --workers-processes N` is one
supervisor process (uvicorn's, which also runs the writer and reconciler threads)
and N server processes. When the supervisor was killed with SIGKILL, the children
went on serving and holding the port, with nobody pushing usage to Stripe. Each child
now builds its app through `create_child_app`, which (on Linux) asks the kernel to
send it SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`) and, everywhere,
watches its parent pid: once the parent is gone it stops gracefully, and exits hard
after `ORPHAN_GRACE_S` if the graceful stop hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from fastapi import FastAPI

log = logging.getLogger("stripemeter.api.serving")

MAX_HEADER_BYTES = 64 * 1024
SUPERVISOR_PID_ENV = "STRIPEMETER_SUPERVISOR_PID"
PARENT_POLL_S = 0.5
ORPHAN_GRACE_S = 5.0
# A graceful stop waits at most this long for open connections (uvicorn waits forever).
GRACEFUL_SHUTDOWN_S = 10
_PR_SET_PDEATHSIG = 1


class CoalescingTransport:
    """A transport whose writes within one event-loop step leave as one `write`.

    Everything but `write` and `close` is the wrapped transport's own.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Collect `data`; the first write of a step schedules the flush."""
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Send what was collected, in order, as one write."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        """Send what was collected, then close."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools missing: h11 with its own limit
    HTTP_PROTOCOL = "h11"
else:
    HTTP_PROTOCOL = "stripemeter.api.serving:LimitedHttpToolsProtocol"

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, refusing request heads over `MAX_HEADER_BYTES`."""

        _head_bytes = 0
        _in_head = True

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            """Serve the connection through a `CoalescingTransport`."""
            coalescing: Any = CoalescingTransport(transport)
            super().connection_made(coalescing)

        def on_message_begin(self) -> None:
            """A new request starts: its head is being read."""
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            """The head is complete: body bytes do not count against the limit."""
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            """The request is read; the next bytes are the next request's head."""
            self._in_head = True
            self._head_bytes = 0
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            """Parse, then refuse the request if its head is still incomplete and too big."""
            super().data_received(data)
            if not self._in_head or self.transport.is_closing():
                return
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse_head()

        def _refuse_head(self) -> None:
            body = (
                '{"error":{"code":"headers_too_large","message":"request headers exceed '
                f'{MAX_HEADER_BYTES} bytes; send smaller headers","field":null}}}}'
            ).encode()
            head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
            for name, value in self.server_state.default_headers:
                head.extend([name, b": ", value, b"\r\n"])
            head.extend(
                [
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
            log.debug("refused a request head over %d bytes from %s", MAX_HEADER_BYTES, self.client)
            self.transport.write(b"".join(head))
            self.transport.close()


def server_options() -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` shared by every mode."""
    return {
        "http": HTTP_PROTOCOL,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "log_level": "warning",
    }


def _set_parent_death_signal(signum: int) -> bool:
    """Linux: have the kernel send `signum` when the parent dies. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int) -> None:
    """Stop this process when `parent_pid` (its parent) is gone: see the module doc."""
    _set_parent_death_signal(signal.SIGTERM)

    def orphaned() -> None:
        log.warning("the supervisor (pid %d) is gone: stopping this server process", parent_pid)
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        os._exit(3)

    if os.getppid() != parent_pid:  # died before the death signal was armed
        threading.Thread(target=orphaned, daemon=True).start()
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        orphaned()

    threading.Thread(target=watch, name="stripemeter-parent-watch", daemon=True).start()


def create_child_app() -> FastAPI:
    """App factory of each `--workers-processes` child: tie its life to the supervisor."""
    from stripemeter.api.app import create_app_from_env
    from stripemeter.config import get_settings

    supervisor = get_settings().STRIPEMETER_SUPERVISOR_PID
    if supervisor is not None:
        die_with_parent(supervisor)
    return create_app_from_env(freeze_startup_heap=True)
