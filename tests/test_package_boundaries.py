"""The service package stands apart from the dev stack and the demo's tools.

`stripemeter` (what `pip install stripemeter` gives, and what the service image runs)
must not import `stripemeter_dev`, `docker`, `invoke` or `jq`: those are the `stack`
and `demo` extras. Checked twice: by importing every module of the package in a fresh
interpreter and looking at `sys.modules`, and by reading every import statement (which
also catches an import inside a function that no test runs). The slow test installs
the project without extras into a new virtualenv and runs the CLI there.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import stripemeter

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICE_DIR = Path(stripemeter.__file__).resolve().parent
FORBIDDEN = ("stripemeter_dev", "docker", "invoke", "jq")
FIND_EACH = (
    "import importlib.util, json; "
    f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {FORBIDDEN!r}}}))"
)

IMPORT_EVERY_MODULE = """
import json, pkgutil, importlib, sys, warnings
warnings.simplefilter("ignore")
import stripemeter
names = ["stripemeter"] + [
    m.name for m in pkgutil.walk_packages(stripemeter.__path__, "stripemeter.")
]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def _top_level(module: str) -> str:
    return module.split(".")[0]


def test_importing_every_service_module_loads_none_of_the_dev_stack(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_MODULE],
        cwd=tmp_path,  # not the checkout, whose docker/ directory would import as `docker`
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert len(report["imported"]) > 40  # every concept package, not just the root
    assert "stripemeter.api.app" in report["imported"]
    loaded = {_top_level(name) for name in report["loaded"]}
    assert sorted(loaded & set(FORBIDDEN)) == []


def test_no_service_module_names_the_dev_stack_in_an_import() -> None:
    offenders = []
    for path in sorted(SERVICE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(SERVICE_DIR)}:{node.lineno} imports {name}"
                for name in names
                if _top_level(name) in FORBIDDEN
            ]
        offenders += [
            f"{path.relative_to(SERVICE_DIR)} calls import_module({node.args[0].value!r})"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and _top_level(str(node.args[0].value)) in FORBIDDEN
        ]
    assert offenders == []


def _copy_project(destination: Path) -> Path:
    """The files a source distribution holds (an install must not write into the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("src", "steps"):
        shutil.copytree(REPO_ROOT / name, destination / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, destination / name)
    return destination


@pytest.mark.slow
def test_a_plain_install_runs_the_cli_without_docker_invoke_or_jq(tmp_path: Path) -> None:
    source = _copy_project(tmp_path / "source")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(source)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    for args in (["--help"], ["api", "--help"]):
        shown = subprocess.run(
            [str(env_dir / "bin" / "stripemeter"), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("usage: stripemeter"), shown.stdout
    api_help = shown.stdout
    assert "--no-workers" in api_help

    probe = subprocess.run(
        [str(python), "-c", FIND_EACH],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    importable = json.loads(probe.stdout)
    # stripemeter_dev is in the distribution (it is only code); its dependencies are not.
    assert importable == {"stripemeter_dev": True, "docker": False, "invoke": False, "jq": False}
