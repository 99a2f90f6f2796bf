"""Schemathesis over /openapi.json: no generated request, valid or not, gets a 5xx or
an answer the document does not describe.

The real API is served on 127.0.0.1 (uvicorn) on a real PostgreSQL database, with the
Stripe emulator behind it and BYPASS_AUTH on, so generated requests reach the handlers
(ingest, reads, mappings, reconciliation) instead of stopping at 401. Every operation of
the served schema is fuzzed with schema-valid (positive) and schema-violating (negative)
cases, `MAX_EXAMPLES` of each. Every answer with status >= 500 (or no answer at all),
and every answer whose status, media type or body does not conform to the document
(schemathesis' response checks), is collected and reported with the exact request, so
the owner of that route can replay it. The module prints how many requests were sent
and how many got a 5xx or a nonconforming answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from stripemeter.api.app import create_app
from stripemeter.config import load_settings
from tests.stripemeter.conftest import Api, start_api
from tests.support.databases import fresh_database
from tests.support.emulator import TEST_KEY, running_emulator

# Per operation and generation mode; raise it (STRIPEMETER_FUZZ_EXAMPLES) for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("STRIPEMETER_FUZZ_EXAMPLES", "25"))
REQUEST_TIMEOUT_S = 15.0
# Each answer must be one the document describes: a documented status, a documented
# media type, a body matching that status's schema.
CONFORMANCE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _operations() -> list[tuple[str, GenerationMode]]:
    """(`METHOD /path`, mode) for every operation the app serves, read from its schema.

    Negative cases only exist for an operation with inputs (parameters or a body).
    """
    schema = create_app(load_settings(BYPASS_AUTH=True)).openapi()
    found = []
    for path, operations in schema["paths"].items():
        for method, spec in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            name = f"{method.upper()} {path}"
            found.append((name, GenerationMode.POSITIVE))
            if spec.get("parameters") or spec.get("requestBody"):
                found.append((name, GenerationMode.NEGATIVE))
    return found


OPERATIONS = _operations()


@dataclass
class Tally:
    """Requests sent, the ones answered with a 5xx (or not answered), and the answers that
    do not conform to the document, over the module."""

    requests: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
def served(pg_server_url: str) -> Iterator[tuple[Api, schemathesis.BaseSchema, Tally]]:
    """The API (BYPASS_AUTH, emulator as Stripe) on 127.0.0.1, its loaded schema, a tally."""
    with (
        running_emulator() as emulator,
        fresh_database(pg_server_url) as db_url,
        start_api(db_url, bypass=True, STRIPE_API_BASE=emulator, STRIPE_SECRET_KEY=TEST_KEY) as api,
    ):
        schema = schemathesis.openapi.from_url(api.url("/openapi.json"), timeout=30)
        tally = Tally()
        yield api, schema, tally
        elapsed = time.monotonic() - tally.started
        print(
            f"\nschemathesis: {tally.requests} requests over {len(tally.by_operation)} "
            f"operations in {elapsed:.1f} s; {len(tally.server_errors)} answered 5xx, "
            f"{len(tally.nonconforming)} did not conform to the document"
        )
        for line in tally.server_errors:
            print("  5xx:", line)
        for line in tally.nonconforming:
            print("  nonconforming:", line)


def _describe(case: Case[Any], base_url: str) -> str:
    """The request a case sent, as a curl command to paste into a bug report."""
    return case.as_curl_command(base_url=base_url)[:1500]


def _nonconformance(case: Case[Any], response: schemathesis.Response) -> str | None:
    """What is wrong with an answer the document does not describe, or None."""
    try:
        case.validate_response(response, checks=CONFORMANCE_CHECKS)
    except FailureGroup as exc:
        return "; ".join(_first_line(failure) for failure in exc.exceptions)
    except Failure as exc:
        return _first_line(exc)
    return None


def _first_line(failure: BaseException) -> str:
    return (str(failure).strip().splitlines() or [type(failure).__name__])[0][:300]


def _fuzz(
    api: Api, schema: schemathesis.BaseSchema, tally: Tally, name: str, mode: GenerationMode
) -> tuple[list[str], list[str]]:
    """Send `MAX_EXAMPLES` generated cases for operation `name`; return the 5xx found and
    the answers that do not conform to the document."""
    method, path = name.split(" ", 1)
    operation = schema[path][method]
    found: list[str] = []
    nonconforming: list[str] = []
    session = requests.Session()

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,  # the machine is shared; the request timeout bounds each call
        database=None,
        phases=[hypothesis.Phase.generate],  # report every 5xx, do not spend time shrinking
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        tally.requests += 1
        tally.by_operation[name] = tally.by_operation.get(name, 0) + 1
        try:
            response = case.call(base_url=api.base, session=session, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            found.append(f"no answer ({type(exc).__name__}): {_describe(case, api.base)}")
            return
        if response.status_code >= 500:
            found.append(
                f"{response.status_code} {response.text[:300]!r}: {_describe(case, api.base)}"
            )
        problem = _nonconformance(case, response)
        if problem is not None:
            nonconforming.append(f"{response.status_code} {problem}: {_describe(case, api.base)}")

    try:
        run()
    finally:
        session.close()
    tally.server_errors.extend(found)
    tally.nonconforming.extend(nonconforming)
    return found, nonconforming


@pytest.mark.parametrize(("name", "mode"), OPERATIONS, ids=[f"{n} {m}" for n, m in OPERATIONS])
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    served: tuple[Api, schemathesis.BaseSchema, Tally], name: str, mode: GenerationMode
) -> None:
    api, schema, tally = served
    found, nonconforming = _fuzz(api, schema, tally, name, mode)
    assert found == [], f"{len(found)} request(s) to {name} got a 5xx:\n" + "\n".join(found)
    assert nonconforming == [], (
        f"{len(nonconforming)} answer(s) of {name} do not conform to /openapi.json:\n"
        + "\n".join(nonconforming)
    )


def test_the_fuzz_covered_every_operation_within_budget(
    served: tuple[Api, schemathesis.BaseSchema, Tally],
) -> None:
    # Runs last in the module: the parametrized fuzz above must have reached each route.
    _, _, tally = served
    fuzzed = {name for name, _ in OPERATIONS}
    assert set(tally.by_operation) == fuzzed
    # An operation without inputs has one distinct request; one with inputs gets them all.
    assert tally.requests >= MAX_EXAMPLES * len(fuzzed), tally.by_operation
    assert tally.server_errors == []
    assert tally.nonconforming == []
    assert MAX_EXAMPLES > 25 or time.monotonic() - tally.started < 90
