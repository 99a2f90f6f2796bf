"""Idempotency store retention (keys are kept at least 24 h, then may be pruned)."""

from __future__ import annotations

import time

from stripe_emulator.idempotency import RETENTION_S, IdempotencyStore, fingerprint


def test_keys_younger_than_a_day_survive_pruning_and_older_go() -> None:
    store = IdempotencyStore()
    fp = fingerprint("POST", "/v1/customers", {})
    for key in ("old", "new"):
        store.begin(key, fp)
        store.finish(key, 200, b"{}")
    store.prune(now=time.time() + RETENTION_S - 60)
    assert set(store.done) == {"old", "new"}
    store.prune(now=time.time() + RETENTION_S + 60)
    assert store.done == {}


def test_validation_refusals_are_not_kept() -> None:
    store = IdempotencyStore()
    fp = fingerprint("POST", "/v1/customers", {"x": "1"})
    store.begin("k", fp)
    store.finish("k", 400, b"{}")
    assert store.lookup("k", fingerprint("POST", "/v1/customers", {"x": "2"})) is None
