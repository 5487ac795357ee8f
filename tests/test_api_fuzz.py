"""A bounded schemathesis run over the whole OpenAPI document: no input yields a 5xx.

It covers every endpoint registered on the app (each domain's router adds its own), with
positive and negative examples, on both backends, signed in as an ordinary user so that
authenticated endpoints get past the 401.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from stich.api.app import create_app
from stich.config import Settings
from stich.db import Database
from tests.factories import make_user

EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def fuzz_app(db: Database, settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings, db)
    yield app


def test_no_input_yields_a_server_error(fuzz_app: FastAPI, db: Database) -> None:
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
    assert not failures, "\n".join(failures[:20])


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
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )
        elif response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message", "details"}

    try:
        check()
    except Unsatisfiable:
        # No invalid input exists for an operation without parameters or body.
        assert mode is GenerationMode.NEGATIVE
