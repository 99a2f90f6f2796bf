"""docker-compose.yml with the documented `.env` (a copy of `.env.example`) gives the
demo's stack: the emulator, the demo's short worker intervals, a state dir compose does
not create as root.

Compose's interpolation is rendered here the way compose does it: `${VAR:-default}` takes
the default when VAR is unset *or empty*, `${VAR-default}` only when it is unset. Needs
no Docker engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def dotenv(path: Path) -> dict[str, str]:
    """The `NAME=value` lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def render(value: Any, env: Mapping[str, str]) -> Any:
    """`value` with compose's interpolation applied against `env`."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name, op, default = match.group("name"), match.group("op"), match.group("default")
            if name in env and (env[name] != "" or op != ":-"):
                return env[name]
            return default or ""

        return VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [render(item, env) for item in value]
    if isinstance(value, dict):
        return {key: render(item, env) for key, item in value.items()}
    return value


@pytest.fixture
def example_env() -> dict[str, str]:
    return dotenv(ROOT / ".env.example")


@pytest.fixture
def services(example_env: dict[str, str]) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(render(document["services"], example_env))


def test_the_documented_env_leaves_stripe_api_base_empty(example_env: dict[str, str]) -> None:
    assert example_env["STRIPE_API_BASE"] == "" and example_env["STRIPE_SECRET_KEY"] == ""


@pytest.mark.parametrize("service", ["api", "workers", "step"])
def test_with_the_documented_env_every_app_container_talks_to_the_emulator(
    services: dict[str, Any], service: str
) -> None:
    assert services[service]["environment"]["STRIPE_API_BASE"] == "http://emulator:12111"


@pytest.mark.parametrize("service", ["api", "workers"])
def test_with_the_documented_env_the_demos_short_worker_intervals_apply(
    services: dict[str, Any], service: str
) -> None:
    environment = services[service]["environment"]
    assert (
        environment["RECONCILIATION_INTERVAL_MS"],
        environment["STRIPE_WRITER_INTERVAL_MS"],
    ) == (
        "5000",
        "500",
    )


def test_a_variable_the_documented_env_sets_empty_falls_back_to_the_compose_default(
    example_env: dict[str, str],
) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    empty = {name for name, value in example_env.items() if value == ""}
    unset_only = {
        m.group("name")
        for m in VARIABLE.finditer(text)
        if m.group("op") == "-" and m.group("name") in empty
    }
    assert unset_only == set(), f"use ${{VAR:-default}} for {sorted(unset_only)}"


def test_real_stripe_is_chosen_by_naming_its_base(example_env: dict[str, str]) -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = example_env | {
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_API_BASE": "https://api.stripe.com",
    }
    api = render(document["services"], env)["api"]["environment"]
    assert (api["STRIPE_SECRET_KEY"], api["STRIPE_API_BASE"]) == (
        "sk_test_x",
        "https://api.stripe.com",
    )


def test_the_steps_state_dir_is_never_created_by_compose(services: dict[str, Any]) -> None:
    (volume,) = services["step"]["volumes"]
    assert (volume["type"], volume["source"], volume["target"]) == (
        "bind",
        "./demo-state",
        "/state",
    )
    assert volume["bind"]["create_host_path"] is False
