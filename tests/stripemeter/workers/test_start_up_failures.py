"""`python -m stripemeter.workers.loop --drain` (how tests and the demo start a writer)
refuses an unusable start with one `error:` line, like `stripemeter workers`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.stripemeter.workers.test_workers import writer_env
from tests.support.servers import free_port


def test_drain_against_a_closed_port_exits_2_with_one_error_line(tmp_path: Path) -> None:
    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    result = subprocess.run(
        [sys.executable, "-m", "stripemeter.workers.loop", "--drain"],
        env=writer_env("http://127.0.0.1:9", closed),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: cannot connect to PostgreSQL: connection failed:")
    assert "Connection refused" in lines[0]
    assert result.stdout == ""


def test_drain_with_a_live_key_and_no_opt_in_is_refused_before_the_database(
    tmp_path: Path,
) -> None:
    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    result = subprocess.run(
        [sys.executable, "-m", "stripemeter.workers.loop", "--drain"],
        env={**writer_env("http://127.0.0.1:9", closed), "STRIPE_SECRET_KEY": "sk_live_1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: STRIPE_SECRET_KEY is a live-mode key but the service is in test mode; set "
        "STRIPEMETER_LIVE=1 (or pass --live) to meter real billing, or use an sk_test_ key"
    ]
