"""`stripemeter webhooks setup --url URL` as users run it (a real subprocess) against the
emulator: the endpoint is created once with the handled events, its secret printed as the
`.env` line; a second run reports the existing endpoint and creates nothing."""

from __future__ import annotations

from pathlib import Path

from tests.stripemeter.test_cli import home, run  # noqa: F401 - `home` is a fixture
from tests.support.emulator import TEST_KEY, sdk_client


def test_setup_registers_once_prints_the_env_line_and_reports_an_existing_endpoint(
    home: Path,  # noqa: F811
    emulator_url: str,
) -> None:
    stripe_env = {"STRIPE_API_BASE": emulator_url, "STRIPE_SECRET_KEY": TEST_KEY}
    url = "http://127.0.0.1:3000/v1/stripe/webhooks"
    first = run(home, "webhooks", "setup", "--url", url, **stripe_env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("STRIPE_WEBHOOK_SECRET=whsec_")
    endpoints = sdk_client(emulator_url).v1.webhook_endpoints.list().data
    assert [(e.url, list(e.enabled_events)) for e in endpoints] == [
        (url, ["invoice.created", "invoice.finalized", "test_helpers.test_clock.ready"])
    ]
    assert f"created webhook endpoint {endpoints[0].id}" in first.stderr

    second = run(home, "webhooks", "setup", "--url", url, **stripe_env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert f"webhook endpoint {endpoints[0].id} already exists for {url}" in second.stderr
    assert len(sdk_client(emulator_url).v1.webhook_endpoints.list().data) == 1


def test_setup_refuses_a_url_that_is_not_http_in_one_line(home: Path) -> None:  # noqa: F811
    result = run(home, "webhooks", "setup", "--url", "ftp://example.com/hooks")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --url must be an http(s) URL such as https://host/v1/stripe/webhooks, "
        "got 'ftp://example.com/hooks'"
    ]
    assert "Traceback" not in result.stderr


def test_setup_with_stripe_unreachable_is_one_error_line(home: Path) -> None:  # noqa: F811
    result = run(
        home,
        "webhooks",
        "setup",
        "--url",
        "http://127.0.0.1:3000/v1/stripe/webhooks",
        STRIPE_API_BASE="http://127.0.0.1:9",
        STRIPE_SECRET_KEY=TEST_KEY,
        STRIPE_TIMEOUT_S="2",
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: list webhook endpoints:"), lines
