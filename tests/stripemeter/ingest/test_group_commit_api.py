"""Group commit seen from HTTP: concurrent requests share statements, a client that leaves
mid-commit learns on retry what was stored, and a kill -9 under load loses no answered event."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.auth import create_api_key
from stripemeter.config import load_settings
from stripemeter.ingest.group import GroupCommitter
from tests.stripemeter.conftest import event, start_api
from tests.support.servers import free_port, serve_asgi

SCRIPT = Path(sys.executable).with_name("stripemeter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "stripemeter.cli"]


def test_concurrent_requests_are_stored_in_fewer_statements_and_each_answered_exactly(
    db_url: str,
) -> None:
    tenant = str(uuid.uuid4())
    with psycopg.connect(db_url) as conn:
        secret = create_api_key(conn, tenant, "tests", scopes=["ingest"]).secret
    app = create_app(load_settings(), db_url=db_url)
    errors: list[str] = []
    accepted: list[int] = []
    with serve_asgi(app) as base:

        def client(n: int) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {secret}"
            for i in range(20):
                body = {"events": [event(str(tenant), idempotencyKey=f"c{n}-{i}", quantity=n)]}
                answer = session.post(base + "/v1/events/ingest", json=body, timeout=30)
                if answer.status_code != 200:
                    errors.append(answer.text)
                else:
                    accepted.append(answer.json()["accepted"])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        committer: GroupCommitter = app.state.ingest
        groups, grouped = committer.groups, committer.grouped_requests
    assert errors == []
    assert accepted == [1] * 320
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM events), sum(event_count), sum(total) FROM usage_buckets"
        ).fetchone()
    assert row == (320, 320, 20 * sum(range(16)))
    assert grouped == 320
    assert groups < 320  # some requests shared a statement


def test_a_client_gone_while_its_group_commits_learns_on_retry_that_it_was_stored(
    db_url: str,
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION slow_cus_slow() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.customer_ref = 'cus_slow' THEN PERFORM pg_sleep(1.5); END IF;"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER slow BEFORE INSERT ON events"
            " FOR EACH ROW EXECUTE FUNCTION slow_cus_slow()"
        )
    with start_api(db_url) as api:
        body = {"events": [event(api.tenant, idempotencyKey="slow-1", customerRef="cus_slow")]}
        with pytest.raises(requests.ReadTimeout):
            api.session.post(api.url("/v1/events/ingest"), json=body, timeout=0.3)
        deadline = time.monotonic() + 10
        while api.scalar("SELECT count(*) FROM events") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        retry = api.post("/v1/events/ingest", json=body)
        assert retry.status_code == 200
        assert retry.json()["results"] == [{"idempotencyKey": "slow-1", "status": "duplicate"}]
        assert api.scalar("SELECT count(*) FROM events") == 1
        assert api.scalar("SELECT sum(event_count) FROM usage_buckets") == 1


def test_kill_9_of_the_api_under_load_loses_no_answered_event(db_url: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="smgc", dir="/tmp"))
    tenant = str(uuid.uuid4())
    with psycopg.connect(db_url) as conn:
        secret = create_api_key(conn, tenant, "kill-test", scopes=["ingest"]).secret
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BYPASS_AUTH") and not k.startswith("STRIPEMETER_")
    }
    env.update(STRIPEMETER_HOME=str(home), DATABASE_URL=db_url)
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "api", "--port", str(port), "--no-workers", "--no-migrate"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    sent: set[str] = set()
    answered: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the API exited during start-up"
            try:
                if requests.get(base + "/health/live", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)

        def client(n: int) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {secret}"
            i = 0
            while not stop.is_set():
                keys = [f"k{n}-{i}-{j}" for j in range(10)]
                i += 1
                with lock:
                    sent.update(keys)
                body = {"events": [event(str(tenant), idempotencyKey=k) for k in keys]}
                try:
                    answer = session.post(base + "/v1/events/ingest", json=body, timeout=10)
                except requests.RequestException:
                    return
                if answer.status_code == 200:
                    with lock:
                        answered.update(r["idempotencyKey"] for r in answer.json()["results"])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
    with psycopg.connect(db_url) as conn:
        stored = {row[0] for row in conn.execute("SELECT idempotency_key FROM events")}
        counted = conn.execute("SELECT coalesce(sum(event_count), 0) FROM usage_buckets").fetchone()
    assert len(answered) >= 300
    assert answered <= stored, f"{len(answered - stored)} answered events were lost"
    assert stored <= sent
    assert counted == (len(stored),)
