"""Lockout protects the password, not the account: an attacker who guesses a victim's
password until it locks cannot sign the victim out, and a client's failures cost that
client (a per-address throttle) rather than the victim (issue 13, item 9)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.api.app import create_app
from stich.auth.throttle import MemoryFailureStore, client_network
from stich.config import Settings
from stich.db import Database
from stich.users.models import User
from tests.auth_support import (
    PASSWORD,
    auth_settings,
    bearer,
    login_response,
    register,
    unique_email,
)

ATTACKER = ("203.0.113.7", 40000)
VICTIM = ("198.51.100.9", 40001)
BUDGET = 7  # failures per client address: above the account's lock threshold of 5


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path, login_client_max_failures=BUDGET)


@pytest.fixture
def app(db: Database, settings: Settings) -> FastAPI:
    return create_app(settings, db)


@pytest.fixture
def attacker(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, client=ATTACKER) as client:
        yield client


@pytest.fixture
def victim(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, client=VICTIM) as client:
        yield client


def failures(db: Database, email: str) -> int:
    with db.read() as uow:
        count = uow.session.scalar(select(User.failed_login_attempts).where(User.email == email))
        assert count is not None
        return count


def test_a_locked_victim_keeps_its_session_refresh_and_api_key(
    attacker: TestClient, victim: TestClient, db: Database
) -> None:
    account = register(victim)
    created = victim.post(
        "/api/keys", json={"name": "ci", "scopes": ["account:read"]}, headers=account.headers
    )
    assert created.status_code == 201
    api_key = bearer(created.json()["key"])

    answers = [login_response(attacker, account.email, f"guess {n}").status_code for n in range(5)]
    assert answers == [401, 401, 401, 401, 423]

    # Password sign-in is locked, for the attacker and the victim alike...
    locked = login_response(victim, account.email, PASSWORD)
    assert locked.status_code == 423 and "Retry-After" in locked.headers
    # ...and so is re-authenticating with the password, even the right one.
    change = {"current_password": PASSWORD, "new_password": "another long passphrase"}
    refused = victim.post("/api/me/password", json=change, headers=account.headers)
    assert refused.status_code == 423 and refused.json()["error"]["code"] == "too_many_attempts"
    kept = victim.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=account.headers)
    assert kept.status_code == 423
    assert failures(db, account.email) == 5  # refusals while locked count nothing more

    # What the victim had already proven keeps working.
    assert victim.get("/api/me", headers=account.headers).status_code == 200
    assert victim.get("/api/me", headers=api_key).status_code == 200
    rotated = victim.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert rotated.status_code == 200, rotated.text
    fresh = bearer(rotated.json()["access_token"])
    assert victim.get("/api/auth/sessions", headers=fresh).status_code == 200


def test_an_attackers_failures_cost_the_attacker_not_the_victim(
    attacker: TestClient, victim: TestClient, db: Database
) -> None:
    account = register(victim)
    stranger = unique_email("stranger")
    # Spread over the victim, an unknown email and an account of its own, the attacker's
    # failures all count against its address; the victim's lock comes at the fifth.
    guesses = [account.email] * 5 + [stranger] * 2
    assert len(guesses) == BUDGET
    for n, email in enumerate(guesses):
        assert login_response(attacker, email, f"guess {n}").status_code in (401, 423)

    for email, password in ((account.email, PASSWORD), (stranger, "guess"), (account.email, "x")):
        throttled = login_response(attacker, email, password)
        assert throttled.status_code == 429
        error = throttled.json()["error"]
        assert error["code"] == "too_many_sign_in_failures"
        assert int(throttled.headers["Retry-After"]) == error["details"]["retry_after"] > 0
    # The throttled attempts were refused before the account was even looked at.
    assert failures(db, account.email) == 5
    # Known and unknown emails are throttled alike: the answer says nothing of accounts.
    assert (
        login_response(attacker, account.email, "y").json()["error"]["code"]
        == login_response(attacker, stranger, "y").json()["error"]["code"]
    )


def test_the_victim_is_not_blocked_by_the_attackers_throttle(
    attacker: TestClient, victim: TestClient, db: Database
) -> None:
    account = register(victim)
    strangers = [unique_email("stranger") for _ in range(BUDGET)]
    for email in strangers:  # credential stuffing: one guess per address, none locks
        assert login_response(attacker, email, "guess").status_code == 401
    assert login_response(attacker, account.email, PASSWORD).status_code == 429
    assert failures(db, account.email) == 0

    signed_in = login_response(victim, account.email, PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    assert login_response(victim, account.email, "typo").status_code == 401


def test_login_documents_both_refusals(app: FastAPI) -> None:
    responses = app.openapi()["paths"]["/api/auth/login"]["post"]["responses"]
    assert "429" in responses and "423" in responses


# -- the in-process failure store -------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_counts_a_sliding_window() -> None:
    clock = FakeClock()
    store = MemoryFailureStore(3, 60, clock=clock)
    assert [store.add_failure("a") for _ in range(2)] == [False, False]
    clock.now += 30
    assert store.retry_after("a") is None
    assert store.add_failure("a") is True
    assert store.retry_after("a") == pytest.approx(30)  # the first failure ages out first
    assert store.retry_after("b") is None  # per key
    clock.now += 30
    assert store.retry_after("a") is None  # the first two aged out together
    assert store.add_failure("a") is False
    assert store.add_failure("a") is True
    assert store.retry_after("a") == pytest.approx(30)
    clock.now += 90
    assert store.retry_after("a") is None


def test_memory_store_is_bounded() -> None:
    store = MemoryFailureStore(1, 60, max_keys=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        store.add_failure(key)
    assert store.retry_after("a") is None  # the least recent key was forgotten
    assert store.retry_after("b") is not None and store.retry_after("c") is not None


def test_a_client_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert client_network("203.0.113.7") == "203.0.113.7"
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2::99")
    assert client_network("2001:db8:1:2::1") != client_network("2001:db8:1:3::1")
    assert client_network(None) == "unknown"
