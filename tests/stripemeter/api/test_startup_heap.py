"""A served API process moves its start-up heap out of the garbage collector's reach
(`create_app(freeze_startup_heap=True)`, what `stripemeter api` builds); apps built for
tests and embedding leave the collector as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.config import load_settings
from tests.support.databases import fresh_database
from tests.support.servers import serve_asgi


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as before


def _frozen_while_served(url: str, *, freeze: bool) -> int:
    app = create_app(load_settings(BYPASS_AUTH=False), db_url=url, freeze_startup_heap=freeze)
    with serve_asgi(app) as base:
        assert requests.get(base + "/health/live", timeout=10).status_code == 200
        return gc.get_freeze_count()


def test_a_served_process_freezes_its_startup_heap(pg_server_url: str, unfrozen: None) -> None:
    with fresh_database(pg_server_url) as url:
        assert _frozen_while_served(url, freeze=False) == 0
        assert _frozen_while_served(url, freeze=True) > 10_000  # modules, app, pools
