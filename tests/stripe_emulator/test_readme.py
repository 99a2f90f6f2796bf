"""The README's emulator section names every endpoint served and every refused parameter."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import stripe_emulator
from stripe_emulator.app import create_app
from stripe_emulator.params import Spec

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## The Stripe emulator")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _unsupported(specs: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, spec in specs.items():
        if not isinstance(spec, Spec):
            return
        name = f"{prefix}[{key}]" if prefix else key
        if spec.kind == "unsupported":
            yield name
        if spec.fields:
            yield from _unsupported(spec.fields, name)
        if spec.item is not None and spec.item.fields:
            yield from _unsupported(spec.item.fields, f"{name}[]")


def _refused_parameters() -> set[str]:
    found: set[str] = set()
    for info in pkgutil.iter_modules(stripe_emulator.__path__):
        module = importlib.import_module(f"stripe_emulator.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, dict)
                and value
                and all(isinstance(v, Spec) for v in value.values())
            ):
                found.update(_unsupported(value))
    return found


def test_readme_lists_every_endpoint_the_emulator_serves() -> None:
    section = _section()
    missing = [
        f"{method} {pattern}"
        for method, pattern in create_app().router.routes()
        if f"`{method} {pattern}`" not in section
    ]
    assert missing == []


def test_readme_lists_every_parameter_answered_emulator_unsupported() -> None:
    section = _section()
    listed = set(re.findall(r"`([a-z_\[\]]+)`", section))
    assert _refused_parameters(), "no refused parameter found: the walk over specs is broken"
    assert sorted(_refused_parameters() - listed) == []
