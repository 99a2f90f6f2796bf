"""Scenario files: the built-in ones load, generate the same usage every time, and a
mistake in a file is one line naming the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripemeter_dev.scenarios.loader import (
    ScenarioError,
    load_scenario,
    scenario_names,
    scenario_path,
)
from stripemeter_dev.scenarios.oracle import distinct_events
from tests.steps.conftest import REPO_ROOT

BUILT_IN = REPO_ROOT / "scenarios"
REQUIRED = {
    "seed",
    "multi-customer",
    "multi-cycle",
    "fractional",
    "max-last",
    "tiered",
    "post-close-under",
    "post-close-over",
    "grace-window",
    "cancel-at-period-end",
}

MINIMAL = """
name = "{name}"
description = "d"
seed = 1
cycles = 2
aggregation = "sum"
[price]
unit_amount = 5
[[customers]]
name = "a"
"""


def write(tmp_path: Path, extra: str = "", name: str = "t", body: str = MINIMAL) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(body.replace("{name}", name) + extra)
    return path


def test_every_built_in_scenario_loads_and_the_issue_lists_them_all() -> None:
    names = scenario_names(BUILT_IN)
    assert set(names) >= REQUIRED
    for name in names:
        loaded = load_scenario(scenario_path(BUILT_IN, name))
        assert loaded.name == name
        assert loaded.requests, name


def test_generated_usage_is_the_same_on_every_load() -> None:
    path = scenario_path(BUILT_IN, "multi-customer")
    assert load_scenario(path) == load_scenario(path)


def test_multi_customer_streams_have_duplicates_retries_and_late_arrivals() -> None:
    loaded = load_scenario(scenario_path(BUILT_IN, "multi-customer"))
    sent = [e.key for r in loaded.requests for e in r.events]
    assert len(sent) - len(set(sent)) == 3  # the duplicates
    assert sum(r.sends for r in loaded.requests) == len(loaded.requests) + 1  # one retry
    assert [r.after_writer for r in loaded.requests][-1] is True  # the late request
    assert {e.customer for e in distinct_events(loaded)} == {"alice", "bob", "carol"}
    assert len(distinct_events(loaded)) == 24


def test_another_seed_gives_other_usage(tmp_path: Path) -> None:
    stream = "[[generate]]\nevents = 5\nquantity = [1, 50]\n"
    first = load_scenario(write(tmp_path, stream))
    other = write(tmp_path, stream, body=MINIMAL.replace("seed = 1", "seed = 2"))
    assert first.requests != load_scenario(other).requests


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "colour = 1\n",
            "t.toml: customers[0].colour: unknown key; allowed: cancel_at_period_end_of, name",
        ),
        (
            '[[customers]]\nname = "b"\n[[customers]]\nname = "c"\n[[customers]]\nname = "d"\n',
            "t.toml: customers: 1 to 3 per test clock (got 4)",
        ),
        (
            '[[requests]]\ncycle = 2\nphase = "post_close"\nkey = "r"\n'
            'events = [{customer = "a", key = "k", quantity = 1, offset_s = -60}]\n',
            "post_close event k is in a's last cycle 2: its correction would have no next "
            "invoice; add a cycle",
        ),
        (
            '[[requests]]\ncycle = 1\nphase = "open"\nkey = "r"\n'
            'events = [{customer = "zed", key = "k", quantity = 1, offset_s = -60}]\n',
            "t.toml: requests[0].events[0].customer: must be one of a (got 'zed')",
        ),
        (
            '[[requests]]\ncycle = 1\nphase = "open"\nkey = "r"\n'
            'events = [{customer = "a", key = "k", quantity = -1, offset_s = -60}]\n',
            "t.toml: requests[0].events[0].quantity: must be positive",
        ),
        (
            "[[generate]]\nevents = 3\nquantity = [1, 5]\nshuffled = true\n",
            "t.toml: generate[0].shuffled: unknown key",
        ),
        (
            '[[stripe_extras]]\ncustomer = "a"\ncycle = 3\nquantity = 1\noffset_s = 0\n',
            "t.toml: stripe_extras[0].cycle: must be a whole number from 1 to 2 (got 3)",
        ),
    ],
)
def test_a_bad_file_is_refused_in_one_line_naming_the_field(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ScenarioError) as refused:
        load_scenario(write(tmp_path, extra))
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_last_meter_refuses_two_events_at_the_same_time(tmp_path: Path) -> None:
    body = MINIMAL.replace('aggregation = "sum"', 'aggregation = "last"')
    twins = (
        '[[requests]]\ncycle = 1\nphase = "open"\nkey = "r"\nevents = [\n'
        '  {customer = "a", key = "x", quantity = 1, offset_s = -60},\n'
        '  {customer = "a", key = "y", quantity = 2, offset_s = -60},\n]\n'
    )
    with pytest.raises(ScenarioError, match="events x and y of a are at the same time"):
        load_scenario(write(tmp_path, twins, body=body))


def test_price_needs_a_last_tier_up_to_inf(tmp_path: Path) -> None:
    body = MINIMAL.replace(
        "unit_amount = 5",
        'tiers_mode = "graduated"\ntiers = [{ up_to = 10, unit_amount = 3 }]',
    )
    with pytest.raises(ScenarioError, match=r"price.tiers\[0\].up_to: the last tier's must be"):
        load_scenario(write(tmp_path, body=body))


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, body="colour = 1\n" + MINIMAL)
    with pytest.raises(ScenarioError, match=r"t\.toml: colour: unknown key; allowed: aggregation"):
        load_scenario(path)


def test_the_name_must_be_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, body=MINIMAL.replace('name = "{name}"', 'name = "other"'))
    with pytest.raises(ScenarioError, match="name: must be the file's name 't'"):
        load_scenario(path)


def test_unknown_and_unparsable_scenarios_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"no scenario 'nope' in .* \(known: .*multi-cycle"):
        scenario_path(BUILT_IN, "nope")
    with pytest.raises(ScenarioError, match="is not valid"):
        scenario_path(BUILT_IN, "../etc/passwd")
    (tmp_path / "broken.toml").write_text("name = ")
    with pytest.raises(ScenarioError, match=r"broken\.toml is not valid TOML"):
        load_scenario(tmp_path / "broken.toml")
