"""`stripemeter.stripe` is the only package of the service that imports the `stripe` SDK.

Read from the source with `ast` (imports inside functions and `TYPE_CHECKING` blocks
count too), so a mention in a docstring or a comment is no import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stripemeter

PACKAGE = Path(stripemeter.__file__).resolve().parent
SEAM = PACKAGE / "stripe"


def sdk_imports(source: str) -> list[int]:
    """Line numbers of every `import stripe[.x]` / `from stripe[.x] import ...`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "stripe" or name.startswith("stripe.") for name in names):
            lines.append(node.lineno)
    return lines


def test_the_detector_sees_every_form_of_sdk_import() -> None:
    source = (
        '"""import stripe in a docstring"""\n'
        "import stripe\n"
        "import os, stripe.error\n"
        "from stripe import StripeClient\n"
        "from . import stripe as local\n"
        "from stripemeter.stripe import client\n"
        "import stripemeter.stripe\n"
        "def f():\n"
        "    from stripe._error import StripeError\n"
    )
    assert sdk_imports(source) == [2, 3, 4, 9]


def test_no_module_outside_the_seam_imports_the_stripe_sdk() -> None:
    outside = [p for p in sorted(PACKAGE.rglob("*.py")) if SEAM not in p.parents]
    assert len(outside) > 20  # the walk found the service's modules
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in outside
        if (lines := sdk_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_seam_itself_is_where_the_sdk_is_imported() -> None:
    assert sdk_imports((SEAM / "client.py").read_text(encoding="utf-8")) != []
