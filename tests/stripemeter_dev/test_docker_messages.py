"""The docker runner's start failures for people: a taken host port names its variable.

Pure functions over the engine's own error text; needs no Docker engine.
"""

from __future__ import annotations

import pytest

from stripemeter_dev.docker import start_failure

ALLOCATED = (
    "driver failed programming external connectivity on endpoint stripemeter-api: "
    "Bind for 127.0.0.1:3000 failed: port is already allocated"
)


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("api", "STRIPEMETER_API_PORT"),
        ("emulator", "STRIPE_EMULATOR_PORT"),
        ("postgres", "STRIPEMETER_POSTGRES_PORT"),
    ],
)
def test_a_taken_host_port_names_the_variable_that_moves_it(service: str, variable: str) -> None:
    assert start_failure(service, ALLOCATED) == (
        f"cannot start {service}: {ALLOCATED}; another program holds its host port: set "
        f"{variable} to another port (or 0 for any free one) in the environment or .env"
    )


def test_another_start_failure_is_left_as_the_engine_said_it() -> None:
    assert start_failure("api", "no such image\nmanifest unknown") == (
        "cannot start api: manifest unknown"
    )
