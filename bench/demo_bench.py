"""Wall time of the parity demo against the emulator, and where it goes.

    .venv/bin/python bench/demo_bench.py [--runs 2] [--json results.json]

Runs the demo in a private temp dir (own STRIPEMETER_HOME, free ports on 127.0.0.1,
emulator advance delay 50 ms) through the local runner, like `invoke demo`: `up`
(cold the first time), `migrate`, then each step as its own process. For each step it
reports the process's wall time, the waits inside it (the `done: <what> after N s`
lines the steps print) and the rest ("work": Python start-up, imports, HTTP calls).
A final `invoke demo` run is timed as a whole, as a user sees it. Prints a table and
JSON; stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _testmode import refuse_live_keys

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from stripemeter_dev.local import LocalRunner  # noqa: E402

STEPS = ("setup", "send_usage", "advance_clock", "validate", "cleanup")
WAIT_LINE = re.compile(r"^\s+done: (?P<what>.+) after (?P<s>[0-9.]+) s$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "API_HOST")
    }
    env.update(
        {
            "STRIPEMETER_HOME": str(root / "h"),
            "DEMO_STATE_DIR": str(root / "state"),
            "API_HOST": f"127.0.0.1:{free_port()}",
            "STRIPE_EMULATOR_PORT": str(free_port()),
            "STRIPE_EMULATOR_ADVANCE_DELAY_MS": "50",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        }
    )
    return env


def runner_for(env: dict[str, str]) -> LocalRunner:
    """A local runner whose stack settings come from `env`, as `invoke` builds one."""
    return LocalRunner(environ=env, out=open(os.devnull, "w"))


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run_step(runner: LocalRunner, step: str, args: list[str], cwd: Path) -> dict[str, Any]:
    """One step as its own process (what run_step does), with its waits parsed out."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", f"steps.{step}", *args],
        env=runner.step_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"step {step} exited {completed.returncode}: {completed.stderr.strip()}")
    waits = []
    for line in completed.stdout.splitlines():
        match = WAIT_LINE.match(line)
        if match:
            waits.append({"what": match["what"], "seconds": float(match["s"])})
    return {"step": step, "wall": wall, "waits": waits, "stdout": completed.stdout}


def demo_once(runner: LocalRunner, cwd: Path) -> dict[str, Any]:
    phases: dict[str, Any] = {"up": timed(runner.up), "migrate": timed(runner.migrate)}
    steps = [run_step(runner, step, ["--fresh"] if step == "setup" else [], cwd) for step in STEPS]
    if "verdict: PARITY" not in steps[3]["stdout"]:
        raise SystemExit("validate did not report parity:\n" + steps[3]["stdout"])
    for step in steps:
        del step["stdout"]
    phases["steps"] = steps
    phases["total"] = phases["up"] + phases["migrate"] + sum(s["wall"] for s in steps)
    return phases


def python_startup(env: dict[str, str]) -> float:
    """Seconds for a bare `python -c 'import steps.validate'` (each step pays this)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import steps.validate, steps.setup"], env=env, check=True
    )
    return time.perf_counter() - started


def invoke_demo(env: dict[str, str], cwd: Path) -> float:
    invoke = Path(sys.executable).parent / "invoke"
    started = time.perf_counter()
    completed = subprocess.run(
        [str(invoke), "-r", str(REPO_ROOT), "demo"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"invoke demo exited {completed.returncode}: {completed.stderr}")
    return time.perf_counter() - started


def print_table(runs: list[dict[str, Any]], startup: float, whole: float) -> None:
    print(f"{'phase':<48} " + " ".join(f"{'run ' + str(i + 1):>8}" for i in range(len(runs))))
    labels = ["up", "migrate"]
    for label in labels:
        print(f"{label:<48} " + " ".join(f"{r[label]:>8.2f}" for r in runs))
    for index, step in enumerate(STEPS):
        print(f"{step:<48} " + " ".join(f"{r['steps'][index]['wall']:>8.2f}" for r in runs))
        for w_index, wait in enumerate(runs[0]["steps"][index]["waits"]):
            cells = []
            for r in runs:
                waits = r["steps"][index]["waits"]
                cells.append(f"{waits[w_index]['seconds']:>8.2f}" if w_index < len(waits) else "")
            print(f"  wait: {wait['what'][:40]:<40} " + " ".join(cells))
    print(f"{'total':<48} " + " ".join(f"{r['total']:>8.2f}" for r in runs))
    print(f"python start-up + step imports, per step process: {startup:.2f} s")
    print(f"`invoke demo` as a user runs it (stack already up): {whole:.2f} s")


def main() -> int:
    refuse_live_keys("demo_bench")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="demo runs (the first is cold)")
    parser.add_argument("--json", type=Path, help="also write the JSON to this file")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="smbench-", dir="/tmp"))  # short: unix socket path
    env = environment(root)
    runner = runner_for(env)
    try:
        runs = [demo_once(runner, root) for _ in range(max(1, options.runs))]
        startup = statistics.median(python_startup(env) for _ in range(3))
        whole = invoke_demo(env, root)
    finally:
        runner.down()
        shutil.rmtree(root, ignore_errors=True)
    print_table(runs, startup, whole)
    result = {
        "runs": runs,
        "python_startup_s": startup,
        "invoke_demo_warm_s": whole,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
