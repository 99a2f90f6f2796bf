"""One way to read configuration: the service's, the steps' and the dev stack's settings.

All three read the environment, then `.env` in the working directory, then defaults,
through `stripemeter.config.EnvSettings`; each knows only its own variables, and a bad
value is one `ConfigError` line naming the variable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from steps._env import load_env
from steps._settings import StepSettings
from stripemeter.config import EnvSettings, Settings, load_settings
from stripemeter.errors import ConfigError
from stripemeter_dev.settings import StackSettings, find_checkout

REPO_ROOT = Path(__file__).resolve().parents[2]
EVERY_KIND: list[type[EnvSettings]] = [Settings, StepSettings, StackSettings]


@pytest.fixture(autouse=True)
def _in_an_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("API_HOST", "STRIPE_SECRET_KEY", "DEMO_WAIT_TIMEOUT_S", "STRIPEMETER_RUNNER"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_the_environment_wins_over_dotenv_which_wins_over_the_default(
    kind: type[EnvSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("API_HOST=from-file:1\nMAX_INGEST_BATCH=77\n")
    monkeypatch.setenv("API_HOST", "from-env:2")
    settings = kind.load()
    assert isinstance(settings, Settings)
    assert (settings.API_HOST, settings.MAX_INGEST_BATCH) == ("from-env:2", 77)
    assert settings.DB_POOL_MAX_SIZE == 10


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_a_blank_variable_in_the_environment_unsets_the_one_in_dotenv(
    kind: type[EnvSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("STRIPE_SECRET_KEY=sk_test_from_file\n")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "")
    settings = kind.load()
    assert isinstance(settings, Settings)
    assert settings.STRIPE_SECRET_KEY is None


def test_an_explicit_environment_replaces_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_HOST", "from-process:1")
    assert StackSettings.load({"MAX_INGEST_BATCH": "5"}).API_HOST == "localhost:3000"
    assert StackSettings.load({"API_HOST": "given:2"}).API_HOST == "given:2"


def test_a_bad_dev_stack_variable_stops_the_dev_stack_but_not_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPEMETER_RUNNER", "cloud")
    assert load_settings().API_HOST == "localhost:3000"
    with pytest.raises(ConfigError, match=r"^invalid configuration: STRIPEMETER_RUNNER: "):
        StackSettings.load()


def test_the_service_settings_hold_no_dev_stack_or_demo_variable() -> None:
    service = set(Settings.model_fields)
    dev_only = {"STRIPEMETER_RUNNER", "STRIPE_EMULATOR_PORT", "POSTGRES_IMAGE", "DEMO_STATE_DIR"}
    assert dev_only <= set(StackSettings.model_fields)
    assert service & dev_only == set()
    assert {name for name in service if name.startswith(("DEMO_", "STEPS_"))} == set()


def test_steps_read_their_wait_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEMO_WAIT_TIMEOUT_S=33\n")
    assert load_env().wait_timeout_s == 33.0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("garbage", "not a connection string libpq can parse"),
        ("mysql://u:hunter2@db/x", "not a postgresql:// URL"),
        ("postgresql://u:hunter2@db:port/x", "port 'port' is not a number 1-65535"),
    ],
)
def test_a_malformed_database_url_is_one_line_naming_the_variable(
    tmp_path: Path, url: str, why: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "DATABASE"))}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "stripemeter"), "migrate"],
        cwd=tmp_path,
        env={**env, "DATABASE_URL": url, "STRIPEMETER_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: invalid configuration: DATABASE_URL: {why}; use "
        "postgresql://user:password@host:5432/dbname, or unset it for the embedded one\n"
    )


def test_the_checkout_is_found_from_the_working_directory_or_named(tmp_path: Path) -> None:
    assert find_checkout(None, REPO_ROOT / "src" / "stripemeter") == REPO_ROOT
    assert find_checkout(REPO_ROOT) == REPO_ROOT
    with pytest.raises(ConfigError) as elsewhere:
        find_checkout(None, tmp_path)
    assert str(elsewhere.value) == (
        f"{tmp_path.resolve()} is not inside a stripemeter checkout (no docker/Dockerfile here "
        "or above): run from the checkout or set STRIPEMETER_CHECKOUT"
    )
    with pytest.raises(ConfigError, match=r"^STRIPEMETER_CHECKOUT='.*' is not a stripemeter"):
        StackSettings.load({"STRIPEMETER_CHECKOUT": str(tmp_path)}).checkout()


def test_env_example_documents_every_variable_a_person_sets() -> None:
    """Every field of the three settings objects is in .env.example, and nothing else is;
    the two a process sets for another (or for a test) are not for people."""
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M)
    )
    internal = {"STRIPEMETER_SUPERVISOR_PID", "STRIPEMETER_WRITER_CRASH_AFTER_ACCEPTS"}
    assert documented == set(StackSettings.model_fields) - internal


def test_a_key_with_stripes_own_base_named_waits_as_long_as_real_stripe(tmp_path: Path) -> None:
    from steps._settings import EMULATOR_WAIT_S, REAL_STRIPE_WAIT_S, StepSettings

    def wait(**env: str) -> float:
        return StepSettings.load(env).wait_timeout_s

    assert wait(STRIPE_SECRET_KEY="sk_test_x") == REAL_STRIPE_WAIT_S
    assert wait(STRIPE_SECRET_KEY="sk_test_x", STRIPE_API_BASE="https://api.stripe.com/") == (
        REAL_STRIPE_WAIT_S
    )
    assert wait(STRIPE_SECRET_KEY="sk_test_x", STRIPE_API_BASE="http://emulator:12111") == (
        EMULATOR_WAIT_S
    )
