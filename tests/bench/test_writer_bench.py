"""`bench/writer_bench.py` run small (5 customers x 3 hours) as a real process: both
transports push every bucket once and Stripe's totals equal the ledger for every customer;
v1 makes one send request per meter event, v2 one stream request plus its session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_writer_bench_is_exact_for_both_transports(tmp_path: Path, pg_server_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=pg_server_url,  # the bench makes (and drops) its own databases there
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]),
    )
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "writer_bench.py"),
            "--customers",
            "5",
            "--hours",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    runs = {run["transport"]: run for run in summary["runs"]}
    assert sorted(runs) == ["v1", "v2"]
    for run in runs.values():
        assert (run["customers_exact"], run["customers"]) == (5, 5)
        assert (run["meter_events"], run["usage_events"], run["errors"]) == (15, 45, 0)
    assert runs["v1"]["send_requests"] == 15  # one POST /v1/billing/meter_events each
    assert runs["v2"]["send_requests"] == 2  # one stream request and one session
    assert summary["v1_over_v2_send_requests"] == 7.5
