"""Fixtures: every database test runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from STICH_TEST_POSTGRES_URL (default: the local server). Each test
process gets its own database, migrated once; tests are isolated by truncating every
table afterwards. SQLite tests get a copy of a migrated template file. Under CI=true a
PostgreSQL that does not answer fails the run instead of skipping.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text

from stich.api.app import create_app
from stich.config import Settings, load_settings
from stich.db import Database, migrate
from stich.models import metadata

# A real primary + streaming replicas for the replica tests (fixtures: replica_cluster,
# replica_db, pg_bin) and a real SMTP server for the mail tests (smtp, inbox); registered
# here so their asserts are rewritten like a conftest's.
pytest_plugins = ["tests.replica_cluster", "tests.email_support"]

POSTGRES_URL = os.environ.get(
    "STICH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgresql"]
TEST_SERVER_KEY = "test-server-key-" + "k" * 32
TEST_KEY_RING = "k1:" + base64.b64encode(b"\x01" * 32).decode()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_connect() -> psycopg.Connection:
    return psycopg.connect(_libpq(POSTGRES_URL), autocommit=True, connect_timeout=3)


def create_pg_database(prefix: str) -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    with _admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with _admin_connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not answering under CI=true: {exc}")
        return False
    return True


@pytest.fixture(scope="session")
def postgres_database(postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip("PostgreSQL is not available (set STICH_TEST_POSTGRES_URL)")
    url = create_pg_database("stich_test")
    migrate.upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "server_key": TEST_SERVER_KEY,
        "secrets_keys": TEST_KEY_RING,
        "env": "test",
        "server_key_file": tmp_path / "server.key",
        # No maintenance schedule in the background of tests; they run jobs themselves.
        "embedded_worker": "off",
        # Tests make bursts no client would; tests/test_rate_limits.py turns limits on.
        "rate_limit_enabled": False,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of the test's backend."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "stich.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    if database.backend == "postgresql":
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with database.primary.begin() as conn:
            conn.execute(text(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE"))
    database.dispose()


@pytest.fixture
def client(db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, postgres_available: bool) -> Iterator[str]:
    """An empty (unmigrated) database, for migration tests."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not postgres_available:
        pytest.skip("PostgreSQL is not available")
    url = create_pg_database("stich_mig")
    yield url
    drop_pg_database(url)


_backend_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for name in BACKENDS:
        if (
            f"[{name}" in report.nodeid
            or f"-{name}]" in report.nodeid
            or f"-{name}-" in report.nodeid
        ):
            _backend_outcomes[(name, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _backend_outcomes:
        return
    terminalreporter.section("database tests per backend")
    for name in BACKENDS:
        counts = {o: n for (b, o), n in _backend_outcomes.items() if b == name}
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none"
        terminalreporter.write_line(f"{name}: {summary}")


def redis_client_or_skip(url: str) -> redis.Redis:
    """A client of the Redis at ``url``; skip the test if none answers (fail under CI)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} is not answering under CI=true: {exc}")
        pytest.skip(f"Redis is not available at {url}")
    return client
