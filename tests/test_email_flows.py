"""Email verification, password reset and email change, through the HTTP API, with the
mail received by a real SMTP server in the test process."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from stich.config import Settings
from stich.db.base import utcnow
from tests.auth_support import (
    PASSWORD,
    audit_actions,
    auth_settings,
    bearer,
    login,
    login_response,
    register,
    unique_email,
)
from tests.email_support import Inbox, delivered, text_of, token_in

NEW_PASSWORD = "a completely new passphrase"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    return auth_settings(
        database_url,
        tmp_path,
        smtp_url=f"smtp://127.0.0.1:{smtp[1]}",
        mail_retry_delay_seconds=0,
        email_cooldown_seconds=0,
    )


def mail_token(settings: Settings, inbox: Inbox, address: str, template: str) -> str:
    delivered(settings)
    return token_in(inbox.last_to(address, template))


def error_code(response: Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def pin_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """The time the email endpoints (and so the services they call) see."""
    monkeypatch.setattr("stich.auth.email_endpoints.utcnow", lambda: moment)


# -- verification ------------------------------------------------------------------------


def test_sign_up_link_verifies_once_and_only_once(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    assert account.body["user"]["email_verified"] is False
    token = mail_token(settings, inbox, account.email, "verify_email")
    message = inbox.last_to(account.email, "verify_email")
    assert settings.public_url + "/verify-email#token=" in text_of(message)

    first = client.post("/api/auth/email/verify/confirm", json={"token": token})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "user_id": account.user_id,
        "email": account.email,
        "email_verified": True,
    }
    assert client.get("/api/me", headers=account.headers).json()["email_verified"] is True
    again = client.post("/api/auth/email/verify/confirm", json={"token": token})
    assert again.status_code == 401
    assert error_code(again) == "email_token_used"
    assert "user.email_verified" in audit_actions(client, account)


def test_a_new_request_replaces_the_older_link(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    first = mail_token(settings, inbox, account.email, "verify_email")
    answer = client.post("/api/auth/email/verify/request", json={"email": account.email})
    assert answer.status_code == 202
    second = mail_token(settings, inbox, account.email, "verify_email")
    assert second != first
    old = client.post("/api/auth/email/verify/confirm", json={"token": first})
    assert error_code(old) == "email_token_expired"
    assert client.post("/api/auth/email/verify/confirm", json={"token": second}).status_code == 200
    # A verified address gets no more verification mail.
    count = len(inbox.to(account.email))
    client.post("/api/auth/email/verify/request", json={"email": account.email})
    delivered(settings)
    assert len(inbox.to(account.email)) == count


def test_links_expire(
    client: TestClient, settings: Settings, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = register(client)
    verify = mail_token(settings, inbox, account.email, "verify_email")
    client.post("/api/auth/password/forgot", json={"email": account.email})
    reset = mail_token(settings, inbox, account.email, "reset_password")

    reset_ttl = timedelta(seconds=settings.password_reset_ttl_seconds)
    pin_clock(monkeypatch, utcnow() + reset_ttl + timedelta(seconds=5))
    late_reset = client.post(
        "/api/auth/password/reset", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    assert late_reset.status_code == 401
    assert error_code(late_reset) == "email_token_expired"
    # The verification link lives longer (24 h by default) and still works then.
    assert client.post("/api/auth/email/verify/confirm", json={"token": verify}).status_code == 200
    login(client, account.email, PASSWORD)  # the password did not change


def test_tokens_belong_to_one_account_and_one_purpose(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    alice, bob = register(client), register(client)
    alice_verify = mail_token(settings, inbox, alice.email, "verify_email")
    client.post("/api/auth/password/forgot", json={"email": alice.email})
    alice_reset = mail_token(settings, inbox, alice.email, "reset_password")

    # A verification link is not a reset link, nor the other way round: the schema says
    # which kind each endpoint takes (422), and the stored purpose is checked too (401).
    wrong = client.post(
        "/api/auth/password/reset", json={"token": alice_verify, "new_password": NEW_PASSWORD}
    )
    assert wrong.status_code == 422
    relabelled = "stich_spr_" + alice_verify.removeprefix("stich_sev_")
    wrong = client.post(
        "/api/auth/password/reset", json={"token": relabelled, "new_password": NEW_PASSWORD}
    )
    assert (wrong.status_code, error_code(wrong)) == (401, "email_token_invalid")
    relabelled = "stich_sev_" + alice_reset.removeprefix("stich_spr_")
    wrong = client.post("/api/auth/email/verify/confirm", json={"token": relabelled})
    assert (wrong.status_code, error_code(wrong)) == (401, "email_token_invalid")
    # Alice's links act on Alice only: Bob stays unverified with his password.
    client.post("/api/auth/email/verify/confirm", json={"token": alice_verify})
    done = client.post(
        "/api/auth/password/reset", json={"token": alice_reset, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200
    assert client.get("/api/me", headers=bob.headers).json()["email_verified"] is False
    login(client, bob.email, PASSWORD)
    login(client, alice.email, NEW_PASSWORD)
    forged = client.post("/api/auth/email/verify/confirm", json={"token": "stich_sev_" + "A" * 43})
    assert error_code(forged) == "email_token_invalid"


# -- password reset ----------------------------------------------------------------------


def test_reset_revokes_every_session_and_key_and_ends_the_lockout(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    other = login(client, account.email)
    key = client.post("/api/keys", json={"name": "ci"}, headers=account.headers).json()["key"]
    for attempt in range(settings.lockout_threshold):
        login_response(client, account.email, f"wrong {attempt}")
    assert login_response(client, account.email, PASSWORD).status_code == 423

    forgot = client.post("/api/auth/password/forgot", json={"email": account.email})
    assert forgot.status_code == 202
    token = mail_token(settings, inbox, account.email, "reset_password")
    done = client.post(
        "/api/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"sessions_revoked": 2, "api_keys_revoked": 1}

    for headers in (account.headers, other.headers, bearer(key)):
        assert client.get("/api/me", headers=headers).status_code == 401
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": other.refresh_token})
    assert refreshed.status_code == 401
    assert login_response(client, account.email, PASSWORD).status_code == 401
    fresh = login(client, account.email, NEW_PASSWORD)  # no lockout any more
    assert client.get("/api/me", headers=fresh.headers).json()["email_verified"] is True
    reused = client.post(
        "/api/auth/password/reset", json={"token": token, "new_password": "yet another one!"}
    )
    assert error_code(reused) == "email_token_used"
    assert "user.password_reset" in audit_actions(client, fresh)


def test_forgot_password_says_nothing_about_the_address(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    delivered(settings)
    before = len(inbox.messages)
    answers = [
        client.post("/api/auth/password/forgot", json={"email": email})
        for email in (account.email, unique_email("nobody"), "not an address")
    ]
    ignored = {"x-request-id", "x-stich-bookmark", "content-length"}
    assert {a.status_code for a in answers} == {202}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert len({frozenset(set(a.headers) - ignored) for a in answers}) == 1
    delivered(settings)
    assert [m["To"].addresses[0].addr_spec for m in inbox.messages[before:]] == [account.email]


def test_concurrent_confirmations_exactly_one_wins(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    client.post("/api/auth/password/forgot", json={"email": account.email})
    token = mail_token(settings, inbox, account.email, "reset_password")
    barrier = threading.Barrier(4)
    answers: list[Response] = []

    def confirm(n: int) -> None:
        barrier.wait()
        answers.append(
            client.post(
                "/api/auth/password/reset",
                json={"token": token, "new_password": f"{NEW_PASSWORD} {n}"},
            )
        )

    threads = [threading.Thread(target=confirm, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401, 401, 401], [a.text for a in answers]
    assert {error_code(a) for a in answers if a.status_code == 401} == {"email_token_used"}
    winner = answers[[a.status_code for a in answers].index(200)]
    assert winner.json()["sessions_revoked"] == 1


# -- email change ------------------------------------------------------------------------


def test_change_email_needs_the_new_address_confirmed(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    new_email = unique_email("moved")
    asked = client.post(
        "/api/me/email",
        json={"new_email": new_email.upper(), "password": PASSWORD},
        headers=account.headers,
    )
    assert asked.status_code == 202, asked.text
    token = mail_token(settings, inbox, new_email, "change_email")
    notice = inbox.last_to(account.email, "email_change_notice")
    assert new_email not in text_of(notice)
    # Nothing changes until the link is used.
    assert client.get("/api/me", headers=account.headers).json()["email"] == account.email

    confirmed = client.post("/api/auth/email/change/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == new_email
    assert confirmed.json()["email_verified"] is True
    assert login_response(client, account.email, PASSWORD).status_code == 401
    moved = login(client, new_email, PASSWORD)
    delivered(settings)
    assert inbox.last_to(account.email, "email_changed")
    again = client.post("/api/auth/email/change/confirm", json={"token": token})
    assert error_code(again) == "email_token_used"
    assert {"user.email_change_requested", "user.email_changed"} <= set(
        audit_actions(client, moved)
    )


def test_a_taken_address_is_answered_like_a_free_one(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account, owner = register(client), register(client)
    free = unique_email("free")
    answers = [
        client.post(
            "/api/me/email",
            json={"new_email": address, "password": PASSWORD},
            headers=account.headers,
        )
        for address in (owner.email, free)
    ]
    ignored = {"x-request-id", "x-stich-bookmark", "content-length"}
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert set(answers[0].headers) - ignored == set(answers[1].headers) - ignored
    delivered(settings)
    assert [m["X-Stich-Template"] for m in inbox.to(owner.email)] == ["verify_email"]
    assert inbox.last_to(free, "change_email")
    # Both requests told the account's current address.
    notices = [m for m in inbox.to(account.email) if m["X-Stich-Template"] == "email_change_notice"]
    assert len(notices) == 2


def test_change_email_checks_the_password(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    wrong = client.post(
        "/api/me/email",
        json={"new_email": unique_email(), "password": "not my password"},
        headers=account.headers,
    )
    assert wrong.status_code == 403
    assert error_code(wrong) == "wrong_password"
    delivered(settings)
    assert [m["X-Stich-Template"] for m in inbox.to(account.email)] == ["verify_email"]


def test_confirming_a_change_to_an_address_taken_since_sends_nothing(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    account = register(client)
    wanted = unique_email("contested")
    client.post(
        "/api/me/email", json={"new_email": wanted, "password": PASSWORD}, headers=account.headers
    )
    token = mail_token(settings, inbox, wanted, "change_email")
    register(client, email=wanted)  # someone else takes it first
    refused = client.post("/api/auth/email/change/confirm", json={"token": token})
    assert refused.status_code == 409
    assert error_code(refused) == "email_taken"
    delivered(settings)
    # The transaction rolled back, so the "your address changed" notice was never sent.
    assert not [m for m in inbox.to(account.email) if m["X-Stich-Template"] == "email_changed"]
    assert client.get("/api/me", headers=account.headers).json()["email"] == account.email
