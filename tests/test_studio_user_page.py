"""The Studio's user page (issue 16): profile, lock state, apps, sessions, API keys and
audit events; its actions (revoke a session or key, sign out everywhere, unlock, suspend)
each run in one unit of work and leave an audit entry naming the admin and the account."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.auth.models import ApiKey, UserSession
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import User
from tests import studio_support
from tests.factories import make_user
from tests.ops_support import Account
from tests.studio_support import audit, csrf_of, post_from

# The shared fixtures (tests/studio_support.py).
settings = studio_support.settings
admin = studio_support.admin


def test_revoke_a_session_and_a_key_from_the_user_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    made = client.post("/api/keys", json={"name": "deploy bot"}, headers=member.headers)
    assert made.status_code == 201, made.text
    url, manage = f"/admin/user/details/{member.user_id}", f"/admin/user/manage/{member.user_id}"
    with db.read() as uow:
        family = uow.session.scalars(
            select(UserSession.family_id).where(UserSession.user_id == member.user_id)
        ).one()
        key_id = uow.session.scalars(
            select(ApiKey.id).where(ApiKey.user_id == member.user_id)
        ).one()
    page = client.get(url).text
    assert f'data-session="{family}"' in page and "deploy bot" in page
    # The key's preview tells it apart, as its owner sees it; never the key itself.
    raw_key = made.json()["key"]
    assert made.json()["preview"] in page and raw_key not in page

    revoked = post_from(client, url, manage, op="revoke_session", target=family)

    assert "Session revoked" in revoked and f'data-session="{family}"' not in revoked
    assert client.get("/api/me", headers=member.headers).status_code == 401
    [entry] = audit(db, "auth.session_revoked")
    assert (entry.actor_id, entry.subject_user_id, entry.resource_id) == (
        admin.user_id,
        member.user_id,
        family,
    )
    post_from(client, url, manage, op="revoke_key", target=key_id)
    with db.read() as uow:
        key = uow.session.get(ApiKey, key_id)
        assert key is not None and key.revoked_at is not None
    [entry] = audit(db, "auth.key_revoked")
    assert entry.actor_id == admin.user_id and entry.old_values == {"name": "deploy bot"}
    # A session of another account is not this account's to revoke.
    other = make_user(db)
    with db.read() as uow:
        theirs = uow.session.scalars(
            select(UserSession).where(UserSession.user_id == other.user_id)
        ).one()
    refused = post_from(client, url, manage, op="revoke_session", target=theirs.family_id)
    assert "no such active session" in refused
    assert client.get("/api/me", headers=other.headers).status_code == 200
    assert len(audit(db, "auth.session_revoked")) == 1


def test_sign_out_everywhere_unlock_and_suspend_from_the_user_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    with db.write() as uow:
        user = uow.session.get(User, member.user_id)
        assert user is not None
        user.failed_login_attempts = 7
        user.locked_until = utcnow() + timedelta(minutes=30)
    url, manage = f"/admin/user/details/{member.user_id}", f"/admin/user/manage/{member.user_id}"
    assert ">locked</span>" in client.get(url).text

    unlocked = post_from(client, url, manage, op="unlock")
    signed_out = post_from(client, url, manage, op="sign_out_everywhere")
    suspended = post_from(client, url, manage, suspended="true")

    assert "Unlocked" in unlocked and ">locked</span>" not in unlocked
    assert "Signed out everywhere (1 session(s) revoked)." in signed_out
    assert "No active sessions." in signed_out
    assert ">suspended</span>" in suspended
    with db.read() as uow:
        user = uow.session.get(User, member.user_id)
        assert user is not None and user.failed_login_attempts == 0 and user.locked_until is None
    for action in ("user.unlocked", "auth.sessions_revoked", "user.suspended"):
        [entry] = audit(db, action)
        assert (entry.actor_id, entry.subject_user_id) == (admin.user_id, member.user_id)
    [unlock] = audit(db, "user.unlocked")
    assert unlock.old_values is not None and unlock.old_values["failed_login_attempts"] == 7
    # Nothing left to do is said, not done twice.
    again = post_from(client, url, manage, op="unlock")
    assert "no failed sign-ins to clear" in again and len(audit(db, "user.unlocked")) == 1


def test_user_actions_need_the_csrf_token_and_a_known_action(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    manage = f"/admin/user/manage/{member.user_id}"
    forged = client.post(manage, data={"csrf": "forged", "op": "sign_out_everywhere"})
    assert forged.status_code == 403
    token = csrf_of(client.get(f"/admin/user/details/{member.user_id}").text)
    assert client.post(manage, data={"csrf": token, "op": "drop_tables"}).status_code == 400
    assert audit(db, "auth.sessions_revoked") == []
