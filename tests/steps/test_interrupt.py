"""Ctrl-C while a step still imports its modules: one line on stderr and exit 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.steps.conftest import step_environment

# A compiled module the steps import (through pydantic) only after `steps/__init__.py`
# ran: once the child maps it, the child is importing, past the package's first line.
IMPORTING_MARKER = "_pydantic_core"


def _mapped(pid: int, needle: str) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_during_a_steps_imports_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "steps.advance_clock"],
        cwd=tmp_path,
        env=step_environment({"DEMO_STATE_DIR": str(tmp_path / "state")}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not _mapped(child.pid, IMPORTING_MARKER) and time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        time.sleep(0.001)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert "Traceback" not in err
    assert err.strip() == "advance_clock: error: interrupted"
    assert child.returncode == 130
