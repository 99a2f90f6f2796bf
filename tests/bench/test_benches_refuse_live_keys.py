"""Every bench refuses a live Stripe key, whatever `STRIPEMETER_LIVE` says: one line,
exit 1, before it starts anything (a real `python bench/<name>.py` process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(p for p in (REPO_ROOT / "bench").glob("*_bench.py"))


def test_every_bench_is_covered() -> None:
    assert [p.stem for p in BENCHES] == [
        "demo_bench",
        "emulator_bench",
        "floor_bench",
        "ingest_bench",
        "statement_bench",
        "writer_bench",
    ]


@pytest.mark.parametrize(
    ("bench", "key"),
    [(p, "sk_live_bench1234") for p in BENCHES] + [(BENCHES[0], "rk_live_bench1234")],
    ids=lambda v: v.stem if isinstance(v, Path) else v[:8],
)
def test_a_bench_refuses_a_live_key_even_with_the_service_opt_in(
    tmp_path: Path, bench: Path, key: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "DATABASE_URL"))}
    env.update({"STRIPE_SECRET_KEY": key, "STRIPEMETER_LIVE": "1"})
    result = subprocess.run(
        [sys.executable, str(bench)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"{bench.stem}: error: STRIPE_SECRET_KEY is a live-mode key; the demo steps, benches, "
        "dev stack and emulator only run in test mode, whatever STRIPEMETER_LIVE says (use an "
        "sk_test_ key, or unset it to use the emulator)"
    ]
