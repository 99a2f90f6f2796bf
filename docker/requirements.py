"""Print the requirements the image installs, one a line, read from pyproject.toml.

    python requirements.py pyproject.toml            the service's dependencies
    python requirements.py pyproject.toml demo ...   what those extras add to them

pgserver (the embedded PostgreSQL) is left out: containers always get DATABASE_URL.
An extra may name another of this project's extras (`stripemeter[demo]`); it is
expanded, so pip never has to resolve this project itself.
"""

from __future__ import annotations

import re
import sys
import tomllib

LEFT_OUT = ("pgserver",)


def main(argv: list[str]) -> int:
    path, *extras = argv
    with open(path, "rb") as file:
        project = tomllib.load(file)["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    if extras:
        unknown = [extra for extra in extras if extra not in optional]
        if unknown:
            print(f"requirements.py: unknown extra {', '.join(unknown)}", file=sys.stderr)
            return 2
        lines = _expand(project["name"], optional, extras)
    else:
        lines = list(project["dependencies"])
    print("\n".join(line for line in lines if not line.startswith(LEFT_OUT)))
    return 0


def _expand(name: str, optional: dict[str, list[str]], extras: list[str]) -> list[str]:
    self_reference = re.compile(rf"^{re.escape(name)}\[(?P<extras>[^\]]+)\]$")
    lines: list[str] = []
    for extra in extras:
        for requirement in optional[extra]:
            match = self_reference.match(requirement.replace(" ", ""))
            if match:
                lines += _expand(name, optional, match.group("extras").split(","))
            elif requirement not in lines:
                lines.append(requirement)
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
