"""`stich users create-admin | suspend | unsuspend` and `stich auth cleanup`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from stich.audit.models import AuditLog
from stich.auth.models import ApiKey, LoginThrottle, OAuthState, UserSession
from stich.cli.common import state
from stich.cli.main import app as cli
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import Conflict, Invalid, NotFound
from stich.users.models import AuthProvider, Role, User
from tests.auth_support import PASSWORD, auth_settings, login, login_response, register
from tests.conftest import TEST_SERVER_KEY


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def stich(database_url: str, *args: str, stdin: str | None = None) -> Result:
    state._settings = None  # each invocation reads its own environment, like a new process
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_ENV": "test",
        "STICH_DATABASE_URL": database_url,
        "STICH_ARGON2_TIME_COST": "1",
        "STICH_ARGON2_MEMORY_COST": "8",
        "STICH_ARGON2_PARALLELISM": "1",
    }
    return CliRunner().invoke(cli, list(args), env=env, input=stdin)


def user_by_email(db: Database, email: str) -> User:
    with db.read() as uow:
        user = uow.session.scalars(select(User).where(User.email == email)).one()
        uow.session.expunge(user)
        return user


def test_create_admin_prompts_for_the_password(
    client: TestClient, db: Database, database_url: str
) -> None:
    result = stich(
        database_url, "users", "create-admin", "Root@Example.test", "--display-name", "Ops",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created administrator root@example.test" in result.stdout
    assert PASSWORD not in result.stdout
    admin = user_by_email(db, "root@example.test")
    assert admin.role is Role.ADMIN and admin.display_name == "Ops"
    signed_in = login(client, "root@example.test")
    assert client.get("/api/me", headers=signed_in.headers).json()["role"] == "admin"


def test_create_admin_refuses_duplicates_and_bad_passwords(db: Database, database_url: str) -> None:
    ok = stich(database_url, "users", "create-admin", "ops@example.test", "--password-stdin",
               stdin=f"{PASSWORD}\n")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    again = stich(database_url, "users", "create-admin", "OPS@example.test", "--password-stdin",
                  stdin=f"{PASSWORD}\n")  # fmt: skip
    assert again.exit_code != 0 and isinstance(again.exception, Conflict)
    assert "--promote" in str(again.exception)
    short = stich(database_url, "users", "create-admin", "new@example.test", "--password-stdin",
                  stdin="short\n")  # fmt: skip
    assert isinstance(short.exception, Invalid)
    bad_email = stich(database_url, "users", "create-admin", "not-an-email", "--password-stdin",
                      stdin=f"{PASSWORD}\n")  # fmt: skip
    assert isinstance(bad_email.exception, Invalid)
    with db.read() as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) == 1


def test_promote_existing_account(client: TestClient, db: Database, database_url: str) -> None:
    account = register(client)
    result = stich(database_url, "users", "create-admin", account.email, "--promote")
    assert result.exit_code == 0, result.output
    assert user_by_email(db, account.email).role is Role.ADMIN
    # The existing session picks the new role up on its next request.
    assert client.get("/api/me", headers=account.headers).json()["role"] == "admin"


def test_suspend_and_unsuspend(client: TestClient, db: Database, database_url: str) -> None:
    account = register(client)
    suspended = stich(database_url, "users", "suspend", account.email.upper())
    assert suspended.exit_code == 0, suspended.output
    assert client.get("/api/me", headers=account.headers).status_code == 401
    assert login_response(client, account.email, PASSWORD).status_code == 403

    unsuspended = stich(database_url, "users", "unsuspend", account.email)
    assert unsuspended.exit_code == 0, unsuspended.output
    assert client.get("/api/me", headers=account.headers).status_code == 200
    with db.read() as uow:
        actions = uow.session.scalars(
            select(AuditLog.action)
            .where(AuditLog.subject_user_id == account.user_id)
            .order_by(AuditLog.created_at, AuditLog.id)
        ).all()
    assert actions[-3:] == ["user.suspended", "auth.login_refused", "user.unsuspended"]

    missing = stich(database_url, "users", "suspend", "nobody@example.test")
    assert isinstance(missing.exception, NotFound)


def test_auth_cleanup_purges_only_what_is_dead(
    client: TestClient, db: Database, database_url: str
) -> None:
    live = register(client)
    dead = register(client)
    key = client.post("/api/keys", json={"name": "old"}, headers=live.headers).json()
    now = utcnow()
    with db.write() as uow:
        uow.session.execute(
            update(UserSession)
            .where(UserSession.user_id == dead.user_id)
            .values(expires_at=now - timedelta(seconds=1))
        )
        uow.session.execute(
            update(ApiKey).where(ApiKey.id == key["id"]).values(revoked_at=now - timedelta(days=31))
        )
        uow.session.add(
            OAuthState(
                provider=AuthProvider.GITHUB,
                state_hash="a" * 64,
                pkce_verifier_hash="b" * 64,
                expires_at=now - timedelta(minutes=1),
            )
        )
        uow.session.add(
            LoginThrottle(
                email_hash="c" * 64, failed_attempts=3, updated_at=now - timedelta(days=2)
            )
        )
        uow.session.add(LoginThrottle(email_hash="d" * 64, failed_attempts=3, updated_at=now))

    dry = stich(database_url, "auth", "cleanup", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "expired sessions: 1 would be deleted" in dry.stdout

    result = stich(database_url, "auth", "cleanup", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "expired sessions: 1 deleted" in result.stdout
    assert "revoked or expired API keys: 1 deleted" in result.stdout
    assert "expired OAuth states: 1 deleted" in result.stdout
    assert "idle sign-in throttles: 1 deleted" in result.stdout
    with db.read() as uow:
        sessions = uow.session.scalars(select(UserSession.user_id)).all()
        assert sessions == [live.user_id]
        assert uow.session.scalars(select(LoginThrottle.email_hash)).all() == ["d" * 64]
    assert client.get("/api/me", headers=live.headers).status_code == 200

    again = stich(database_url, "auth", "cleanup")
    assert "expired sessions: 0 deleted" in again.stdout
