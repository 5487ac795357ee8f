"""Rate limits (docs/operations.md, "Rate limits and request limits"): each budget refuses a
burst with 429, the JSON error body, Retry-After and the RateLimit-* headers, and serves
the same client again after its window; sign-in is limited per submitted email whether
or not an account has it; two app instances sharing Redis enforce one budget."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from stich.api.app import create_app
from stich.api.ratelimit import classify
from stich.config import Settings
from stich.db import Database
from stich.studio import create_studio_app
from tests.auth_support import FAST_ARGON2, PASSWORD, bearer, register, unique_email
from tests.conftest import make_settings, redis_client_or_skip
from tests.ops_support import make_account

REDIS_URL = os.environ.get("STICH_TEST_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:6379/12")
IN_CI = os.environ.get("CI") == "true"
# Long enough that three requests always fall in one window, even on a loaded CI machine
# (at 2 seconds a slow first request once let the first count expire).
WINDOW = "3/5 seconds"
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def limited_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    # The exact strategy, so counts can be asserted; the default is tested on its own.
    values: dict[str, object] = {
        **FAST_ARGON2,
        "rate_limit_enabled": True,
        "rate_limit_strategy": "moving-window",
        **overrides,
    }
    return make_settings(database_url, tmp_path, **values)


@pytest.fixture
def limited(db: Database, database_url: str, tmp_path: Path) -> Callable[..., TestClient]:
    clients: list[TestClient] = []

    def start(**overrides: object) -> TestClient:
        settings = limited_settings(database_url, tmp_path, **overrides)
        client = TestClient(create_app(settings, db), raise_server_exceptions=False)
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def assert_refused(response: Response, budget: str) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["budget"] == budget
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Remaining"] == "0"
    assert all(name in response.headers for name in RATE_HEADERS)


def wait_for_window() -> None:
    time.sleep(5.3)  # the "3/5 seconds" window passes; nothing is timed


# Each budget and one request that counts against it (the client: the test client's address).
Call = Callable[[TestClient, dict[str, str]], Response]
BURSTS: dict[str, tuple[str, Call]] = {
    "signup": (
        "rate_limit_signup",
        lambda c, _h: c.post(
            "/api/auth/register", json={"email": unique_email(), "password": PASSWORD}
        ),
    ),
    "signin": (
        "rate_limit_signin",
        lambda c, _h: c.post("/api/auth/login", json={"email": unique_email(), "password": "x"}),
    ),
    "refresh": (
        "rate_limit_refresh",
        lambda c, _h: c.post("/api/auth/refresh", json={"refresh_token": "not-a-token"}),
    ),
    "password": (
        "rate_limit_password",
        lambda c, _h: c.post("/api/auth/password/forgot", json={"email": unique_email()}),
    ),
    "write": ("rate_limit_write", lambda c, h: c.post("/api/apps", json={"title": "A"}, headers=h)),
    "view": ("rate_limit_view", lambda c, _h: c.post(f"/api/apps/{uuid.uuid4().hex}/views")),
    "feed": ("rate_limit_feed", lambda c, _h: c.get("/api/apps/public")),
}


@pytest.mark.parametrize("budget", list(BURSTS))
def test_a_burst_beyond_the_budget_is_refused_until_the_window_passes(
    limited: Callable[..., TestClient], budget: str
) -> None:
    setting, call = BURSTS[budget]
    client = limited(**{setting: WINDOW})
    headers = register(client).headers if budget == "write" else {}

    served = [call(client, headers) for _ in range(3)]
    assert [r.status_code for r in served if r.status_code == 429] == []
    assert [r.headers["RateLimit-Remaining"] for r in served] == ["2", "1", "0"]
    assert all(r.headers["RateLimit-Limit"] == "3" for r in served)

    assert_refused(call(client, headers), budget)
    wait_for_window()
    again = call(client, headers)
    assert again.status_code != 429 and again.headers["RateLimit-Remaining"] == "2"


def test_unlimited_endpoints_and_disabled_limits_carry_no_headers(
    limited: Callable[..., TestClient], db: Database, database_url: str, tmp_path: Path
) -> None:
    assert "RateLimit-Limit" not in limited().get("/healthz").headers
    settings = make_settings(database_url, tmp_path, rate_limit_feed="1/hour")
    with TestClient(create_app(settings, db)) as off:  # rate_limit_enabled is off in tests
        assert [off.get("/api/apps/public").status_code for _ in range(3)] == [200] * 3
        assert "RateLimit-Limit" not in off.get("/api/apps/public").headers


def test_sign_in_is_limited_per_submitted_email_alike_for_known_and_unknown(
    limited: Callable[..., TestClient],
) -> None:
    client = limited(rate_limit_signin_email="2/minute")
    known = register(client).email
    for email in (known, unique_email("nobody")):
        attempts = [
            client.post("/api/auth/login", json={"email": email, "password": "wrong password"})
            for _ in range(3)
        ]
        assert [r.status_code for r in attempts] == [401, 401, 429]
        assert_refused(attempts[2], "signin")
    # Another email from the same client is still served: the email's budget, not the client's.
    other = client.post("/api/auth/login", json={"email": unique_email(), "password": "x"})
    assert other.status_code == 401
    # Case and spaces do not make a new budget.
    shouted = client.post("/api/auth/login", json={"email": f" {known.upper()} ", "password": "x"})
    assert shouted.status_code == 429


def test_budgets_follow_forwarded_addresses_and_credentials(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = limited_settings(
        database_url, tmp_path, trusted_proxies="10.0.0.0/8", rate_limit_feed=WINDOW
    )
    app = create_app(settings, db)
    with TestClient(app, client=("10.0.0.7", 40000)) as proxy:
        first, second = ({"X-Forwarded-For": ip} for ip in ("203.0.113.5", "203.0.113.6"))
        assert [proxy.get("/api/apps/public", headers=first).status_code for _ in range(3)] == [
            200
        ] * 3
        assert_refused(proxy.get("/api/apps/public", headers=first), "feed")
        assert proxy.get("/api/apps/public", headers=second).status_code == 200
        # A signed-in reader has their own budget, whatever address it comes from.
        account = register(proxy, headers={"X-Forwarded-For": "203.0.113.9"})
        reads = [
            proxy.get("/api/apps/public", headers={**account.headers, **hop})
            for hop in (first, second, first)
        ]
        assert [r.status_code for r in reads] == [200] * 3
        assert_refused(proxy.get("/api/apps/public", headers={**account.headers, **second}), "feed")


def test_a_credential_is_limited_across_addresses(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = limited_settings(
        database_url, tmp_path, trusted_proxies="10.0.0.0/8", rate_limit_write=WINDOW
    )
    with TestClient(create_app(settings, db), client=("10.0.0.7", 40000)) as proxy:
        token = register(proxy).access_token
        hops = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"]
        answers = [
            proxy.post(
                "/api/apps",
                json={"title": "A"},
                headers={**bearer(token), "X-Forwarded-For": hop},
            )
            for hop in hops
        ]
        assert [r.status_code for r in answers[:3]] == [201] * 3
        assert_refused(answers[3], "write")


def test_the_studio_sign_in_is_limited(limited: Callable[..., TestClient], db: Database) -> None:
    client = limited(studio_enabled=True, rate_limit_signin=WINDOW)
    admin = make_account(db, client.app.state.settings)  # type: ignore[attr-defined]
    form = {"username": admin.email, "password": "wrong password"}
    answers = [client.post("/admin/login", data=form) for _ in range(4)]
    assert [r.status_code for r in answers[:3]] == [400] * 3
    assert_refused(answers[3], "signin")


def test_the_studio_served_alone_is_limited_too(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    settings = limited_settings(database_url, tmp_path, rate_limit_signin=WINDOW)
    with TestClient(create_studio_app(settings, db), raise_server_exceptions=False) as studio:
        form = {"username": unique_email(), "password": "wrong password"}
        answers = [studio.post("/admin/login", data=form) for _ in range(4)]
        assert [r.status_code for r in answers[:3]] == [400] * 3
        assert_refused(answers[3], "signin")
        big = studio.post("/admin/login", data={"username": "x" * (2 * 1024 * 1024)})
        assert big.status_code == 413


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis_client_or_skip(REDIS_URL)
    prefix = f"stich-test-rate:{uuid.uuid4().hex}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_two_servers_sharing_redis_enforce_one_budget(
    limited: Callable[..., TestClient], redis_prefix: str
) -> None:
    shared = {
        "rate_limit_url": REDIS_URL,
        "rate_limit_prefix": redis_prefix,
        "rate_limit_feed": "3/minute",
    }
    first, second = limited(**shared), limited(**shared)
    assert first.app is not second.app
    statuses = [c.get("/api/apps/public").status_code for c in (first, second, first)]
    assert statuses == [200] * 3
    assert_refused(second.get("/api/apps/public"), "feed")
    assert_refused(first.get("/api/apps/public"), "feed")
    # In-process stores (the default) each count alone.
    alone = limited(rate_limit_feed="3/minute")
    assert alone.get("/api/apps/public").headers["RateLimit-Remaining"] == "2"


@pytest.mark.parametrize("store", ["in-process", "redis"])
def test_the_default_strategy_refuses_a_burst_and_serves_again_after_the_window(
    limited: Callable[..., TestClient], request: pytest.FixtureRequest, store: str
) -> None:
    overrides: dict[str, object] = {
        "rate_limit_strategy": Settings.model_fields["rate_limit_strategy"].default,
        "rate_limit_feed": WINDOW,
    }
    if store == "redis":
        overrides |= {
            "rate_limit_url": REDIS_URL,
            "rate_limit_prefix": request.getfixturevalue("redis_prefix"),
        }
    client = limited(**overrides)
    # Approximate across a window edge, so only: a burst of 10 is refused in part.
    refused = [
        r for r in (client.get("/api/apps/public") for _ in range(10)) if r.status_code == 429
    ]
    assert refused
    assert_refused(refused[0], "feed")
    wait_for_window()
    assert client.get("/api/apps/public").status_code == 200


def test_an_unreachable_store_serves_rather_than_refuses(
    limited: Callable[..., TestClient],
) -> None:
    client = limited(rate_limit_url="redis://127.0.0.1:1/0", rate_limit_feed="1/hour")
    assert [client.get("/api/apps/public").status_code for _ in range(3)] == [200] * 3


@pytest.mark.parametrize(
    ("method", "path", "budget"),
    [
        ("POST", "/api/auth/register", "signup"),
        ("POST", "/api/auth/login", "signin"),
        ("POST", "/admin/login", "signin"),
        ("POST", "/api/me/password", "password"),
        ("POST", "/api/apps/abc/views", "view"),
        ("POST", "/api/apps/abc/fork", "write"),
        ("DELETE", "/api/apps/abc/star", "write"),
        ("GET", "/api/apps/public", "feed"),
        ("GET", "/api/apps/abc", None),
        ("GET", "/healthz", None),
        ("OPTIONS", "/api/apps", None),  # CORS preflights are not counted
        ("POST", "/admin/app/manage/abc", None),  # Studio edits need a signed-in admin
    ],
)
def test_requests_are_classified_by_method_and_path(
    method: str, path: str, budget: str | None
) -> None:
    assert classify(method, path) == budget
