"""The embedded PostgreSQL: a real server from the `pgserver` wheel, no Docker needed.

With `DATABASE_URL` unset, every process (API, workers, CLI, demo steps) asks this
module for the URL; the first caller starts the server under
`$STRIPEMETER_HOME/pgdata`, later callers find it running (pgserver keeps a lock and
the postmaster pid in the data directory) and share it. It listens on a Unix socket
only, so nothing outside this machine can reach it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from stripemeter.config import Settings
from stripemeter.errors import EmbeddedDatabaseError


def data_dir(settings: Settings) -> Path:
    """Where the embedded server keeps its files: `$STRIPEMETER_HOME/pgdata`, absolute."""
    return (settings.STRIPEMETER_HOME / "pgdata").resolve()


def start(settings: Settings) -> str:
    """Start the embedded server if it is not running and return its connection URL."""
    pgdata = data_dir(settings)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        pgdata.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: cannot create the data "
            f"directory ({exc.strerror or exc}); set STRIPEMETER_HOME to a writable directory "
            "or DATABASE_URL to a running server"
        ) from exc
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            pgserver: Any = importlib.import_module("pgserver")
            server = pgserver.get_server(pgdata, cleanup_mode=None)
            uri: str = server.get_uri()
    except Exception as exc:  # pgserver raises bare subprocess/assert errors
        log = pgdata / "log"
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc} (server log: {log})"
        ) from exc
    return uri


def running_url(settings: Settings) -> str | None:
    """The URL of the embedded server if it is running, without starting it."""
    pgdata = data_dir(settings)
    if not (pgdata / "postmaster.pid").exists():
        return None
    try:
        utils: Any = importlib.import_module("pgserver.utils")
        info = utils.PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return None
        uri: str = info.get_uri()
    except Exception as exc:  # pgserver raises bare OSError/ValueError on a damaged pid file
        raise EmbeddedDatabaseError(
            f"cannot tell whether the embedded PostgreSQL in {pgdata} runs: {exc}"
        ) from exc
    return uri


def stop(settings: Settings) -> bool:
    """Stop the embedded server; return False when it was not running."""
    pgdata = data_dir(settings)
    if running_url(settings) is None:
        return False
    import os
    import subprocess

    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl: Any = importlib.import_module("pgserver._commands").pg_ctl
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    except (ImportError, OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedDatabaseError(
            f"could not stop the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    return True
