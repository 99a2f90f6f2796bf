"""Every `stripemeter` subcommand, action and argument explains itself in `--help`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from stripemeter.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "stripemeter"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_parser_has_a_description_and_every_argument_its_help() -> None:
    missing: list[str] = []
    walked = dict(_parsers(build_parser()))
    for path, parser in walked.items():
        if not (parser.description or "").strip():
            missing.append(f"{path}: no description")
        for action in parser._actions:
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}: no help")
    assert missing == []
    # The walk did reach the nested actions (a tree, not only the top level).
    assert {
        "stripemeter db",
        "stripemeter api-keys revoke",
        "stripemeter corrections apply",
    } <= set(walked)


def test_a_subcommand_help_shows_its_description_and_argument_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["db", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "manage the embedded PostgreSQL" in out
    assert "start it (printing its URL), stop it" in out
