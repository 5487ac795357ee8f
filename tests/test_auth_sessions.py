"""Sessions: rotation with theft detection, one winner under concurrency, listing and
revoking, the per-user cap, use bookkeeping, and 401s for every bad credential."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, update

from stich.api.app import create_app
from stich.auth.models import UserSession
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from tests.auth_support import (
    FIREFOX_LINUX,
    SAFARI_IPHONE,
    audit_actions,
    auth_settings,
    bearer,
    login,
    register,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path, max_sessions_per_user=3)


def refresh(client: TestClient, token: str) -> Response:
    return client.post("/api/auth/refresh", json={"refresh_token": token})


def family_rows(db: Database, family_id: str) -> list[UserSession]:
    with db.read() as uow:
        rows = list(
            uow.session.scalars(
                select(UserSession)
                .where(UserSession.family_id == family_id)
                .order_by(UserSession.id)
            )
        )
        uow.session.expunge_all()
        return rows


def run_together(count: int, action: Callable[[], Response]) -> list[Response]:
    """Run ``action`` in ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[Response] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        response = action()
        with lock:
            results.append(response)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- refresh rotation ------------------------------------------------------------------


def test_refresh_rotates_the_pair_and_keeps_the_session_id(
    client: TestClient, db: Database
) -> None:
    account = register(client)
    first = refresh(client, account.refresh_token)
    assert first.status_code == 200
    pair = first.json()
    assert pair["session_id"] == account.session_id
    assert pair["access_token"] != account.access_token
    assert pair["refresh_token"] != account.refresh_token

    # The old access token died with its refresh token; the new one works.
    assert client.get("/api/me", headers=account.headers).status_code == 401
    assert client.get("/api/me", headers=bearer(pair["access_token"])).status_code == 200

    rows = family_rows(db, account.session_id)
    assert len(rows) == 2
    old, new = rows
    assert old.revoked_reason == "rotated" and old.replaced_by_id == new.id
    assert new.revoked_at is None and new.created_at == old.created_at  # signed-in time kept

    listed = client.get("/api/auth/sessions", headers=bearer(pair["access_token"])).json()
    assert [s["id"] for s in listed["items"]] == [account.session_id]


def test_reusing_a_refresh_token_revokes_the_whole_family(client: TestClient, db: Database) -> None:
    account = register(client)
    unrelated = login(client, account.email)  # another sign-in: must survive
    second = refresh(client, account.refresh_token).json()
    third = refresh(client, second["refresh_token"]).json()

    stolen = refresh(client, account.refresh_token)  # replay of the first token
    assert stolen.status_code == 401
    assert stolen.json()["error"]["code"] == "refresh_token_reused"

    # Every token of the family is dead, including the newest pair.
    assert client.get("/api/me", headers=bearer(third["access_token"])).status_code == 401
    assert refresh(client, third["refresh_token"]).status_code == 401
    assert all(row.revoked_at is not None for row in family_rows(db, account.session_id))
    assert family_rows(db, account.session_id)[-1].revoked_reason == "reuse_detected"

    # The other sign-in is untouched, and the event is in the account's trail.
    assert client.get("/api/me", headers=unrelated.headers).status_code == 200
    assert "auth.refresh_reuse" in audit_actions(client, unrelated)


def test_concurrent_refresh_with_one_token_has_exactly_one_winner(
    client: TestClient, db: Database
) -> None:
    account = register(client)
    results = run_together(6, lambda: refresh(client, account.refresh_token))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 401, 401, 401, 401, 401]
    # Only one new session was ever created for the family.
    assert len(family_rows(db, account.session_id)) == 2


def test_with_a_grace_period_a_racing_refresh_does_not_sign_the_winner_out(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    graceful = auth_settings(database_url, tmp_path, refresh_reuse_grace_seconds=30)
    with TestClient(create_app(graceful, db), raise_server_exceptions=False) as client:
        account = register(client)
        results = run_together(4, lambda: refresh(client, account.refresh_token))
        winners = [r for r in results if r.status_code == 200]
        losers = [r for r in results if r.status_code != 200]
        assert len(winners) == 1 and len(losers) == 3
        assert {r.json()["error"]["code"] for r in losers} == {"refresh_token_used"}
        winner = winners[0].json()
        assert client.get("/api/me", headers=bearer(winner["access_token"])).status_code == 200

        # Outside the grace period a replay is theft again.
        with db.write() as uow:
            uow.session.execute(
                update(UserSession)
                .where(UserSession.revoked_reason == "rotated")
                .values(revoked_at=utcnow() - timedelta(minutes=5))
            )
        assert refresh(client, account.refresh_token).json()["error"]["code"] == (
            "refresh_token_reused"
        )
        assert client.get("/api/me", headers=bearer(winner["access_token"])).status_code == 401


def test_expired_tokens(client: TestClient, db: Database) -> None:
    account = register(client)
    past = utcnow() - timedelta(seconds=1)
    with db.write() as uow:
        uow.session.execute(update(UserSession).values(access_expires_at=past))
    expired = client.get("/api/me", headers=account.headers)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    renewed = refresh(client, account.refresh_token)
    assert renewed.status_code == 200
    assert client.get("/api/me", headers=bearer(renewed.json()["access_token"])).status_code == 200

    with db.write() as uow:
        uow.session.execute(update(UserSession).values(expires_at=past))
    late = refresh(client, renewed.json()["refresh_token"])
    assert late.status_code == 401
    assert late.json()["error"]["code"] == "invalid_token" or late.json()["error"]["code"] == (
        "token_expired"
    )


def test_refresh_rejects_garbage(client: TestClient) -> None:
    for token in ["nonsense", "stich_srt_" + "a" * 43, "stich_sat_" + "a" * 43]:
        response = refresh(client, token)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"


# -- logout and the session list ---------------------------------------------------------


def test_logout_ends_only_the_current_session(client: TestClient) -> None:
    account = register(client)
    other = login(client, account.email)
    assert client.post("/api/auth/logout", headers=account.headers).status_code == 204
    assert client.get("/api/me", headers=account.headers).status_code == 401
    after_logout = refresh(client, account.refresh_token)
    assert after_logout.status_code == 401
    assert after_logout.json()["error"]["code"] == "token_revoked"
    assert client.get("/api/me", headers=other.headers).status_code == 200
    assert "auth.logout" in audit_actions(client, other)


def test_session_list_shows_devices_and_masked_networks(db: Database, settings: Settings) -> None:
    app = create_app(settings, db)
    with (
        TestClient(app, client=("203.0.113.77", 50000)) as laptop,
        TestClient(app, client=("2001:db8:abcd:12::1", 50000)) as phone,
    ):
        account = register(laptop, headers={"User-Agent": FIREFOX_LINUX})
        mobile = login(phone, account.email, headers={"User-Agent": SAFARI_IPHONE})
        listed = laptop.get("/api/auth/sessions", headers=account.headers)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [mobile.session_id, account.session_id]
    newest, oldest = items
    assert (newest["device_type"], newest["os"], newest["browser"]) == ("mobile", "iOS", "Safari")
    assert newest["ip_masked"] == "2001:db8:abcd::/48" and newest["current"] is False
    assert oldest["device_name"] == "Firefox on Linux" and oldest["current"] is True
    assert oldest["ip_masked"] == "203.0.113.0/24"
    assert "203.0.113.77" not in listed.text
    with db.read() as uow:
        stored = uow.session.scalars(select(UserSession.ip_hash)).all()
        assert all(value and "203.0.113" not in value for value in stored)


def test_revoke_one_and_revoke_others(client: TestClient) -> None:
    account = register(client)
    second = login(client, account.email)
    third = login(client, account.email)

    assert (
        client.delete(
            f"/api/auth/sessions/{second.session_id}", headers=account.headers
        ).status_code
        == 204
    )
    assert client.get("/api/me", headers=second.headers).status_code == 401
    assert refresh(client, second.refresh_token).status_code == 401
    again = client.delete(f"/api/auth/sessions/{second.session_id}", headers=account.headers)
    assert again.status_code == 404

    revoked = client.post("/api/auth/sessions/revoke-others", headers=third.headers)
    assert revoked.json() == {"revoked": 1}
    assert client.get("/api/me", headers=account.headers).status_code == 401
    assert client.get("/api/me", headers=third.headers).status_code == 200
    listed = client.get("/api/auth/sessions", headers=third.headers).json()["items"]
    assert [s["id"] for s in listed] == [third.session_id]
    trail = audit_actions(client, third)
    assert "auth.session_revoked" in trail and "auth.sessions_revoked" in trail


def test_a_user_cannot_see_or_revoke_another_users_sessions(client: TestClient) -> None:
    alice = register(client)
    bob = register(client)
    alice_list = client.get("/api/auth/sessions", headers=alice.headers).json()["items"]
    assert [s["id"] for s in alice_list] == [alice.session_id]
    response = client.delete(f"/api/auth/sessions/{bob.session_id}", headers=alice.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"
    assert client.get("/api/me", headers=bob.headers).status_code == 200


def test_oldest_sessions_are_evicted_beyond_the_cap(client: TestClient) -> None:
    first = register(client)
    later = [login(client, first.email) for _ in range(3)]  # cap is 3
    assert client.get("/api/me", headers=first.headers).status_code == 401
    assert refresh(client, first.refresh_token).status_code == 401
    listed = client.get("/api/auth/sessions", headers=later[-1].headers).json()["items"]
    assert [s["id"] for s in listed] == [a.session_id for a in reversed(later)]
    # Refreshing does not count as a new sign-in, so nothing more is evicted.
    refresh(client, later[0].refresh_token)
    assert len(client.get("/api/auth/sessions", headers=later[-1].headers).json()["items"]) == 3
    assert "auth.sessions_evicted" in audit_actions(client, later[-1])


def test_last_used_is_touched_at_most_once_a_minute(client: TestClient, db: Database) -> None:
    account = register(client)

    def last_used() -> Any:
        return family_rows(db, account.session_id)[-1].last_used_at

    created = last_used()
    client.get("/api/me", headers=account.headers)
    assert last_used() == created  # used within the minute: no write

    long_ago = utcnow() - timedelta(minutes=5)
    with db.write() as uow:
        uow.session.execute(update(UserSession).values(last_used_at=long_ago))
    client.get("/api/me", headers=account.headers)
    touched = last_used()
    assert touched > long_ago + timedelta(minutes=4)
    client.get("/api/me", headers=account.headers)
    assert last_used() == touched


# -- every endpoint refuses a bad credential -----------------------------------------------

PROTECTED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/auth/sessions", None),
    ("DELETE", "/api/auth/sessions/01a20e28-0f72-7054-95cc-5af71420baf4", None),
    ("POST", "/api/auth/sessions/revoke-others", None),
    ("POST", "/api/auth/logout", None),
    ("POST", "/api/keys", {"name": "k"}),
    ("GET", "/api/keys", None),
    ("DELETE", "/api/keys/01a20e28-0f72-7054-95cc-5af71420baf4", None),
    ("GET", "/api/me", None),
    ("PATCH", "/api/me", {"bio": "hi"}),
    ("DELETE", "/api/me", {"password": "whatever-it-is"}),
    ("POST", "/api/me/password", {"current_password": "x", "new_password": "y" * 12}),
    ("GET", "/api/me/audit", None),
    ("GET", "/api/me/export", None),
    ("GET", "/api/auth/identities", None),
    ("DELETE", "/api/auth/identities/01a20e28-0f72-7054-95cc-5af71420baf4", None),
    ("POST", "/api/auth/oauth/github/link", {}),
]


def bad_credentials(client: TestClient, db: Database) -> dict[str, dict[str, str]]:
    expired = register(client)
    revoked = register(client)
    client.post("/api/auth/logout", headers=revoked.headers)
    with db.write() as uow:
        uow.session.execute(
            update(UserSession)
            .where(UserSession.user_id == expired.user_id)
            .values(access_expires_at=utcnow() - timedelta(seconds=1))
        )
    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "garbage": bearer("garbage"),
        "unknown access token": bearer("stich_sat_" + "A" * 43),
        "unknown api key": bearer("stich_sk_" + "A" * 43),
        "refresh token as bearer": bearer(expired.refresh_token),
        "forged anonymous": bearer("stich_san_" + "A" * 64),
        "expired access token": expired.headers,
        "revoked access token": revoked.headers,
    }


def test_every_endpoint_rejects_bad_credentials_with_401_json(
    client: TestClient, db: Database
) -> None:
    credentials = bad_credentials(client, db)
    for method, path, body in PROTECTED:
        for label, headers in credentials.items():
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, label, response.text)
            error = response.json()["error"]
            assert error["code"] and error["message"], (method, path, label)


def test_anonymous_principals_cannot_manage_accounts(client: TestClient) -> None:
    anonymous = client.post("/api/auth/anonymous").json()["anonymous_token"]
    for method, path, body in PROTECTED:
        response = client.request(method, path, json=body, headers=bearer(anonymous))
        assert response.status_code == 401, (method, path)


def test_api_keys_cannot_manage_sessions_or_keys(client: TestClient) -> None:
    account = register(client)
    key = client.post(
        "/api/keys",
        json={"name": "full", "scopes": ["account:read", "account:write"]},
        headers=account.headers,
    ).json()["key"]
    headers = bearer(key)
    assert client.get("/api/me", headers=headers).status_code == 200
    assert (
        client.patch("/api/me", json={"bio": "from a script"}, headers=headers).status_code == 200
    )
    for method, path, body in [
        ("GET", "/api/auth/sessions", None),
        ("POST", "/api/auth/logout", None),
        ("POST", "/api/keys", {"name": "another"}),
        ("DELETE", "/api/me", {}),
        ("POST", "/api/me/password", {"new_password": "y" * 12}),
    ]:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "session_required"
