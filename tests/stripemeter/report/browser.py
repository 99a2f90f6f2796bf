"""Debian's chromium, headless, driven by Playwright (never `playwright install`).

`open_page` yields a page; the test skips when chromium is missing, unless
STRIPEMETER_REQUIRE_BROWSER=1 (CI sets it), where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    """The chromium binary, or a skip (a failure when the browser is required)."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found:
        return found
    if os.environ.get("STRIPEMETER_REQUIRE_BROWSER") == "1":
        pytest.fail(
            "chromium is missing and STRIPEMETER_REQUIRE_BROWSER=1: apt-get install chromium"
        )
    pytest.skip("chromium is not installed (set STRIPEMETER_REQUIRE_BROWSER=1 to fail instead)")


@contextmanager
def open_page(url: str, *, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless chromium page showing `url`, with its own throw-away profile."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=FLAGS,
                viewport={"width": width, "height": height},
            )
            try:
                page = context.new_page()
                page.goto(url, wait_until="load")
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
