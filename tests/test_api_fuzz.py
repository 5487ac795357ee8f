"""The OpenAPI document describes the API: a bounded schemathesis run with every check.

Every operation registered on the app (each domain's router adds its own), with positive
and negative examples, on both backends, signed in as an ordinary user so that
authenticated endpoints get past the 401 (except the coverage case that leaves out the
Bearer credentials a secured operation requires: it is sent without them, and must be a
401). Each case runs all of schemathesis's checks:
no 5xx, status codes, content types, headers and bodies as documented, schema-valid
requests accepted and schema-invalid ones refused. Two phases, as ``schemathesis run``
has them: random fuzzing (Hypothesis) and the deterministic coverage phase (boundary
values, each constraint broken in turn, missing and wrong-typed parameters), sampled
evenly to stay within time. A 405 and its ``Allow`` header are checked for every path and
method (last test).

The few refusals of a schema-valid request that no JSON Schema can express are listed in
``UNSTATABLE_RULES``, each with the documented reason; any other refusal fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.meta import CoverageScenario
from schemathesis.generation.overrides import Override
from schemathesis.openapi.checks import MissingHeaderNotRejected, RejectedPositiveData

from stich.api.app import create_app
from stich.config import Settings
from stich.db import Database
from tests.factories import make_user

EXAMPLES_PER_OPERATION = 5  # per operation and mode: about 25 s per backend on 2 cores
COVERAGE_CASES_PER_OPERATION = 16  # of about 40 on average: about 15 s per backend
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")

# Error codes a schema-valid request may still get, because the rule depends on state or
# time, not on the request's shape.
UNSTATABLE_RULES = {
    "invalid_cursor": "a cursor is an opaque token the server issued (docs/gallery.md)",
    "invalid_bookmark": "X-Stich-Bookmark is an opaque value the server issued (docs/replicas.md)",
    "invalid_anonymous_token": "an anonymous token must be one POST /auth/anonymous issued",
    "expiry_in_past": "an expiry must be in the future when the request arrives",
    "too_many_attempts": "failed password checks throttle the client for a while (docs/auth.md)",
}


@pytest.fixture
def fuzz_app(db: Database, settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings, db)
    yield app


def test_every_check_passes_on_every_operation(fuzz_app: FastAPI, db: Database) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # A fresh account per operation: fuzzing DELETE /me or logout must not leave the
        # operations after it unauthenticated (they would only ever see 401s).
        headers = make_user(db).headers
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, headers, failures)
    assert operations >= 2
    assert not failures, "\n\n".join(failures[:10])


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    failures: list[str],
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        _run_checks(case, headers, failures)

    try:
        check()
    except Unsatisfiable:
        # No invalid input exists for an operation without parameters or body.
        assert mode is GenerationMode.NEGATIVE


def test_coverage_phase_cases_pass_every_check(fuzz_app: FastAPI, db: Database) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = make_user(db).headers
        cases = list(
            CoverageGenerator(
                operation=operation,
                generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                generation_config=schema.config.generation_for(
                    operation=operation, phase="coverage"
                ),
                auth_storage=None,
                override=Override(),
                feedback=FeedbackSources(),
            )
        )
        stride = -(-len(cases) // COVERAGE_CASES_PER_OPERATION)  # ceiling division
        for case in cases[::stride]:
            _run_checks(case, headers, failures)
    assert not failures, "\n\n".join(failures[:10])


def _run_checks(case: schemathesis.Case, headers: dict[str, str], failures: list[str]) -> None:
    if _without_credentials(case):  # the case checks that a secured operation needs them
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    response = case.call(headers=headers)
    try:
        case.validate_response(response, headers=headers, transport_kwargs={"headers": headers})
    except FailureGroup as group:
        for failure in group.exceptions:
            if not _unstatable(failure, response):
                failures.append(
                    f"{case.method} {case.formatted_path}: {failure.title}\n"
                    f"  sent {case.query or ''} {case.body!r:.300}\n"
                    f"  got {response.status_code} {response.text[:300]}"
                )


def _without_credentials(case: schemathesis.Case) -> bool:
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return (
        getattr(data, "scenario", None) == CoverageScenario.MISSING_PARAMETER
        and str(getattr(data, "parameter", "")).lower() == "authorization"
    )


# Validation errors (422 validation_error) for bounds of JSON documents in bytes and depth,
# which JSON Schema has no compact way to state (docs/apps.md, stich.users.schemas).
UNSTATABLE_VALIDATION_TYPES = {"json_too_deep", "json_too_large"}


def _unstatable(failure: Any, response: Any) -> bool:
    if not isinstance(failure, RejectedPositiveData | MissingHeaderNotRejected):
        return False
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    if isinstance(failure, MissingHeaderNotRejected):
        # Refused all the same: a malformed bookmark sent beside no credentials is a 400.
        return bool(error["code"] == "invalid_bookmark")
    if error["code"] == "validation_error":
        types = {item["type"] for item in error["details"].get("errors", [])}
        return bool(types) and types <= UNSTATABLE_VALIDATION_TYPES
    return error["code"] in UNSTATABLE_RULES


def test_a_method_a_path_does_not_have_is_a_405_naming_the_ones_it_has(
    client: TestClient,
) -> None:
    """For every documented path: each undocumented method is a 405 whose ``Allow`` lists
    exactly the documented ones (where a template also matches another path, e.g.
    ``/apps/bulk-status`` and ``/apps/{app_id}``, only OPTIONS is sure not to route)."""
    paths = client.get("/openapi.json").json()["paths"]
    templates = list(paths)
    wrong = []
    for template, item in paths.items():
        documented = sorted(method.upper() for method in item if method.upper() in HTTP_METHODS)
        url = template.replace("{", "").replace("}", "")  # any value that fits the pattern
        overlaps = any(
            other != template and other.count("/") == template.count("/") for other in templates
        )
        for method in HTTP_METHODS:
            if method in documented or (overlaps and method != "OPTIONS"):
                continue
            response = client.request(method, url)
            allow = sorted(part.strip() for part in response.headers.get("allow", "").split(","))
            if response.status_code != 405 or allow != documented:
                wrong.append(f"{method} {url}: {response.status_code} Allow: {allow}")
    assert not wrong, "\n".join(wrong)
