"""`stripe-emulator`: serve the offline Stripe on 127.0.0.1 (default port `DEFAULT_PORT`).

Configured by its flags only; it reads no environment variable. State lives in memory
unless `--state-dir DIR` is given: then it is kept in DIR across restarts (and crashes),
and `--reset` starts empty by deleting it first.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

import uvicorn

from stripe_emulator import DEFAULT_PORT
from stripe_emulator.app import create_app
from stripe_emulator.persistence import StateError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stripe-emulator",
        description="Offline, stateful Stripe API emulator (test mode only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to bind (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--advance-delay-ms",
        type=int,
        default=500,
        help="real time a test clock stays 'advancing' after an advance (default 500)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep the state in this directory across restarts (default: in memory only)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="with --state-dir: delete the stored state first and start empty",
    )
    return parser


def _check_bindable(host: str, port: int) -> str | None:
    """None when host:port can be bound, else a one-line reason."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            return f"cannot bind {host}:{port}: {exc.strerror}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse options, refuse unusable addresses in one line, then serve until interrupted."""
    args = _parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"stripe-emulator: error: invalid port {args.port}", file=sys.stderr)
        return 2
    if args.advance_delay_ms < 0:
        print("stripe-emulator: error: --advance-delay-ms must be >= 0", file=sys.stderr)
        return 2
    if args.reset and args.state_dir is None:
        print("stripe-emulator: error: --reset needs --state-dir", file=sys.stderr)
        return 2
    problem = _check_bindable(args.host, args.port)
    if problem is not None:
        print(f"stripe-emulator: error: {problem}", file=sys.stderr)
        return 1
    try:
        app = create_app(
            advance_delay_s=args.advance_delay_ms / 1000, state_dir=args.state_dir, reset=args.reset
        )
    except StateError as exc:
        print(f"stripe-emulator: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"stripe-emulator listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True
    )
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        return 0
    finally:
        app.close()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
