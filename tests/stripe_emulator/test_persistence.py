"""Persistent state (`--state-dir`): survives restarts and kill -9, `--reset` starts empty.

Process tests run the real `stripe-emulator` console module and talk to it with the
official SDK; the round-trip tests serve the app in-process on 127.0.0.1 and compare
the store's internals (internal keys, list order, shared objects) before and after.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import stripe

from stripe_emulator.app import Emulator, create_app
from stripe_emulator.persistence import FILENAME, StateError, open_state
from tests.stripe_emulator.helpers import (
    advance,
    clock_customer,
    metered_price,
    send_event,
    wait_ready,
)
from tests.support.emulator import sdk_client
from tests.support.servers import free_port, serve_asgi

CMD = [sys.executable, "-m", "stripe_emulator.cli"]
# A day boundary five days ago: meter events must be at most 35 days old in real time.
T0 = int(time.time()) // 86400 * 86400 - 5 * 86400


class Proc:
    """A running `stripe-emulator` process."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen = subprocess.Popen(
            [
                *CMD,
                "--port",
                str(self.port),
                "--advance-delay-ms",
                "20",
                "--state-dir",
                str(state_dir),
                *extra,
            ],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{self.url}/_emulator/health", timeout=1).raise_for_status()
                return
            except requests.ConnectionError:
                assert self.popen.poll() is None, "emulator exited early"
                assert time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            self.popen.wait(timeout=15)

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=15)


@contextmanager
def emulator_process(state_dir: Path, *extra: str) -> Iterator[Proc]:
    proc = Proc(state_dir, *extra)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def served(state_dir: Path) -> Iterator[tuple[Emulator, str]]:
    app = create_app(advance_delay_s=0.02, state_dir=state_dir)
    try:
        with serve_asgi(app) as url:
            yield app, url
    finally:
        app.close()


def _world(client: stripe.StripeClient) -> dict[str, Any]:
    """A customer on a clock with a metered subscription billed once, plus usage."""
    meter, price = metered_price(client)
    clock, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    advance(client, clock.id, T0 + 3600)
    send_event(client, cus.id, T0 + 60, 7, "evt-a")
    send_event(client, cus.id, T0 + 120, 5, "evt-b")
    advance(client, clock.id, T0 + 32 * 86400)
    return {"meter": meter, "price": price, "clock": clock, "customer": cus, "sub": sub}


def _internal(app: Emulator) -> bytes:
    store = app.store
    return orjson.dumps(
        {
            "by_type": {t: list(objs.items()) for t, objs in store.by_type.items() if objs},
            "identifiers": sorted(store.identifiers),
            "usage": {f"{m}|{c}": evs for (m, c), evs in store.usage.items()},
            "seq": store.seq,
        }
    )


def test_round_trip_rebuilds_every_internal_key_list_order_and_shared_object(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as (app, url):
        made = _world(sdk_client(url))
        before = _internal(app)
        keys_before = {k: v.body for k, v in app.idempotency.done.items()}
    with served(tmp_path) as (app, url):
        assert _internal(app) == before
        store = app.store
        sub = store.by_type["subscriptions"][made["sub"].id]
        item = sub["items"]["data"][0]
        assert item is store.by_type["subscription_items"][item["id"]]
        assert item["price"] is store.by_type["prices"][made["price"].id]
        assert store.index[made["customer"].id] is store.by_type["customers"][made["customer"].id]
        events = store.usage[(made["meter"].id, made["customer"].id)]
        assert [e["identifier"] for e in events] == ["evt-a", "evt-b"]
        assert events[0] is store.identifiers["evt-a"]
        assert {k: v.body for k, v in app.idempotency.done.items()} == keys_before


def test_prices_changed_through_a_subscription_item_are_saved(tmp_path: Path) -> None:
    with served(tmp_path) as (_, url):
        client = sdk_client(url)
        made = _world(client)
        client.v1.prices.update(made["price"].id, {"metadata": {"tier": "gold"}})
    with served(tmp_path) as (app, url):
        sub = sdk_client(url).v1.subscriptions.retrieve(made["sub"].id)
        assert sub["items"].data[0].price.metadata.to_dict() == {"tier": "gold"}
        assert app.store.by_type["prices"][made["price"].id]["metadata"] == {"tier": "gold"}


def test_a_second_emulator_on_the_same_state_is_refused(tmp_path: Path) -> None:
    first = open_state(tmp_path)
    first.conn.execute("SELECT count(*) FROM objects").fetchall()
    try:
        with pytest.raises(StateError, match="in use by another stripe-emulator"):
            open_state(tmp_path)
    finally:
        first.close()


def test_state_survives_a_restart_of_the_real_process(tmp_path: Path) -> None:
    with emulator_process(tmp_path) as proc:
        client = sdk_client(proc.url)
        made = _world(client)
        invoices = client.v1.invoices.list({"customer": made["customer"].id}).data
        period = client.v1.subscriptions.retrieve(made["sub"].id)["items"].data[0]
        first = client.v1.customers.create(
            {"email": "idem@example.com"}, {"idempotency_key": "create-once"}
        )
    with emulator_process(tmp_path) as proc:
        client = sdk_client(proc.url)
        cus = client.v1.customers.retrieve(made["customer"].id)
        assert cus.email == "demo@example.com"
        assert cus.test_clock == made["clock"].id
        assert client.v1.prices.retrieve(made["price"].id).unit_amount == 5
        sub = client.v1.subscriptions.retrieve(made["sub"].id)
        assert sub.status == "active"
        item = sub["items"].data[0]
        assert item.current_period_start == period.current_period_start > T0
        assert item.current_period_end == period.current_period_end
        again = client.v1.invoices.list({"customer": made["customer"].id}).data
        assert [(i.id, i.status, i.amount_due, i.number) for i in again] == [
            (i.id, i.status, i.amount_due, i.number) for i in invoices
        ]
        cycle = [i for i in again if i.billing_reason == "subscription_cycle"]
        assert [(i.status, i.amount_due) for i in cycle] == [("paid", 60)]
        with pytest.raises(stripe.InvalidRequestError) as dup:
            send_event(client, made["customer"].id, T0 + 180, 1, "evt-a")
        assert dup.value.code == "resource_already_exists"
        replay = client.v1.customers.create(
            {"email": "idem@example.com"}, {"idempotency_key": "create-once"}
        )
        assert replay.id == first.id
        assert replay.last_response.headers.get("Idempotent-Replayed") == "true"
        assert len(client.v1.customers.list({"email": "idem@example.com"}).data) == 1
        # the clock keeps billing from where it stopped
        advance(client, made["clock"].id, T0 + 62 * 86400)
        cycles = client.v1.invoices.list(
            {"customer": made["customer"].id, "subscription": made["sub"].id}
        ).data
        assert len([i for i in cycles if i.billing_reason == "subscription_cycle"]) == 2


def test_reset_flag_starts_empty(tmp_path: Path) -> None:
    with emulator_process(tmp_path) as proc:
        cus = sdk_client(proc.url).v1.customers.create({"email": "gone@example.com"})
    with emulator_process(tmp_path, "--reset") as proc:
        client = sdk_client(proc.url)
        assert client.v1.customers.list().data == []
        with pytest.raises(stripe.InvalidRequestError) as missing:
            client.v1.customers.retrieve(cus.id)
        assert missing.value.http_status == 404


def test_control_reset_also_clears_the_disk(tmp_path: Path) -> None:
    with emulator_process(tmp_path) as proc:
        client = sdk_client(proc.url)
        client.v1.customers.create({"email": "gone@example.com"}, {"idempotency_key": "k1"})
        requests.post(f"{proc.url}/_emulator/reset", timeout=5).raise_for_status()
        kept = client.v1.customers.create({"email": "kept@example.com"})
    with emulator_process(tmp_path) as proc:
        client = sdk_client(proc.url)
        assert [c.id for c in client.v1.customers.list().data] == [kept.id]
        fresh = client.v1.customers.create({"email": "new@example.com"}, {"idempotency_key": "k1"})
        assert fresh.email == "new@example.com"


def test_kill_9_during_a_burst_of_200_creates_loses_no_acknowledged_object(
    tmp_path: Path,
) -> None:
    proc = Proc(tmp_path)
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        try:
            resp = requests.post(
                f"{proc.url}/v1/customers",
                data={"email": f"burst{n}@example.com"},
                headers={"Authorization": "Bearer sk_test_burst"},
                timeout=10,
            )
        except requests.RequestException as exc:
            with lock:
                failures.append(type(exc).__name__)
            return
        if resp.status_code == 200:
            with lock:
                acknowledged.append(resp.json()["id"])

    threads = [threading.Thread(target=create, args=(n,)) for n in range(200)]
    try:
        for n, thread in enumerate(threads):
            thread.start()
            if n == 120:
                deadline = time.monotonic() + 20
                while len(acknowledged) < 40 and time.monotonic() < deadline:
                    time.sleep(0.001)
                proc.kill()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        proc.stop()
    assert 40 <= len(acknowledged) < 200
    assert failures, "the kill came after the burst"
    with emulator_process(tmp_path) as again:
        client = sdk_client(again.url)
        for cus_id in acknowledged:
            assert client.v1.customers.retrieve(cus_id).id == cus_id
        listed = requests.get(f"{again.url}/_emulator/state", timeout=10).json()["customers"]
        assert {c["id"] for c in listed} >= set(acknowledged)
    with sqlite3.connect(tmp_path / FILENAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_corrupt_state_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"this is not a database" * 100)
    done = subprocess.run(
        [*CMD, "--port", str(free_port()), "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"stripe-emulator: error: the emulator state file {tmp_path}/")
    assert "invoke emulator-reset" in lines[0]


def test_unwritable_state_dir_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = subprocess.run(
        [*CMD, "--port", str(free_port()), "--state-dir", str(blocker / "state")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"stripe-emulator: error: the emulator state directory {blocker}/state is not "
        "writable (Not a directory)"
    ]


def test_reset_without_state_dir_is_refused() -> None:
    done = subprocess.run([*CMD, "--reset"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == "stripe-emulator: error: --reset needs --state-dir"


def _on_disk(app: Emulator) -> bytes:
    """`_internal` of a store loaded afresh from what the app has committed so far."""
    from stripe_emulator.idempotency import IdempotencyStore
    from stripe_emulator.persistence import StateFile
    from stripe_emulator.store import Store

    backing = app.store.backing
    assert backing is not None
    fresh = Emulator.__new__(Emulator)
    fresh.store = Store(app.store.advance_delay_s)
    fresh.idempotency = IdempotencyStore()
    StateFile(backing.path, backing.conn).load(fresh.store, fresh.idempotency)
    return _internal(fresh)


def test_after_every_kind_of_write_the_disk_holds_exactly_the_memory(tmp_path: Path) -> None:
    now = int(time.time())
    with served(tmp_path) as (app, url):
        client = sdk_client(url)
        meter, price = metered_price(client)
        licensed = client.v1.prices.create(
            {
                "currency": "usd",
                "product": price.product,
                "unit_amount": 900,
                "recurring": {"interval": "month"},
            }
        )
        clock, cus = clock_customer(client, now - 7200)
        other, _ = clock_customer(client, now - 7200, card="pm_card_chargeCustomerFail")
        state: dict[str, Any] = {}
        steps: list[tuple[str, Any]] = [
            ("update customer", lambda: client.v1.customers.update(cus.id, {"name": "New"})),
            ("update product", lambda: client.v1.products.update(price.product, {"name": "P2"})),
            ("update price", lambda: client.v1.prices.update(price.id, {"nickname": "n2"})),
            (
                "update meter",
                lambda: client.v1.billing.meters.update(meter.id, {"display_name": "M"}),
            ),
            (
                "subscribe",
                lambda: state.update(
                    sub=client.v1.subscriptions.create(
                        {
                            "customer": cus.id,
                            "items": [{"price": price.id}, {"price": licensed.id, "quantity": 2}],
                        }
                    )
                ),
            ),
            ("advance", lambda: advance(client, clock.id, now - 300)),
            ("usage", lambda: send_event(client, cus.id, now - 3600, 10, "u1")),
            ("usage 2", lambda: send_event(client, cus.id, now - 600, 4, "u2")),
            (
                "cancel usage",
                lambda: client.v1.billing.meter_event_adjustments.create(
                    {"event_name": "api_calls", "cancel": {"identifier": "u2"}, "type": "cancel"}
                ),
            ),
            (
                "update subscription",
                lambda: client.v1.subscriptions.update(
                    state["sub"].id, {"cancel_at_period_end": True, "metadata": {"k": "v"}}
                ),
            ),
            ("renewal", lambda: advance(client, clock.id, now + 40 * 86400)),
            ("list invoices", lambda: client.v1.invoices.list({"customer": cus.id})),
            ("deactivate meter", lambda: client.v1.billing.meters.deactivate(meter.id)),
            (
                "detach",
                lambda: client.v1.payment_methods.detach(
                    client.v1.customers.payment_methods.list(cus.id).data[0].id
                ),
            ),
            ("delete clock", lambda: client.v1.test_helpers.test_clocks.delete(other.id)),
            ("delete customer", lambda: client.v1.customers.delete(cus.id)),
        ]
        for name, step in steps:
            step()
            assert _on_disk(app) == _internal(app), f"disk differs from memory after {name}"


def test_tuples_shared_objects_and_marker_like_keys_round_trip_exactly(tmp_path: Path) -> None:
    from stripe_emulator.idempotency import IdempotencyStore
    from stripe_emulator.store import Store

    store, idem = Store(), IdempotencyStore()
    open_state(tmp_path).load(store, idem)
    price = store.insert("prices", {"id": "price_1", "metadata": {"\x00ref": "user", "a": 1}})
    store.insert(
        "subscriptions",
        {"id": "sub_1", "_stub": (10, 20), "items": {"data": [{"price": price}]}, "_k": -1},
    )
    store.commit()
    price["metadata"]["a"] = 2  # changed in place, reached only through the subscription
    store.by_type["subscriptions"]["sub_1"]["_k"] = 0
    store.commit()
    assert store.backing is not None
    store.backing.close()

    again = Store()
    open_state(tmp_path).load(again, IdempotencyStore())
    sub = again.by_type["subscriptions"]["sub_1"]
    assert sub["_stub"] == (10, 20) and isinstance(sub["_stub"], tuple)
    assert sub["_k"] == 0
    assert sub["items"]["data"][0]["price"] is again.by_type["prices"]["price_1"]
    assert again.by_type["prices"]["price_1"]["metadata"] == {"\x00ref": "user", "a": 2}
    assert again.seq == 2


def test_a_clock_advancing_when_killed_finishes_its_advance_after_the_restart(
    tmp_path: Path,
) -> None:
    proc = Proc(tmp_path, "--advance-delay-ms", "600000")  # the last flag wins: 10 minutes
    try:
        client = sdk_client(proc.url)
        _, price = metered_price(client)
        clock, cus = clock_customer(client, T0)
        sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": T0 + 32 * 86400})
        assert client.v1.test_helpers.test_clocks.retrieve(clock.id).status == "advancing"
    finally:
        proc.kill()
    with emulator_process(tmp_path) as again:  # 20 ms delay
        client = sdk_client(again.url)
        ready = wait_ready(client, clock.id, timeout=5)
        assert ready.frozen_time == T0 + 32 * 86400
        found = client.v1.invoices.list({"subscription": sub.id}).data
        assert "subscription_cycle" in {i.billing_reason for i in found}
