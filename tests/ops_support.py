"""Helpers for the operations tests (Studio, metrics, maintenance): accounts with passwords,
rows in every credential-bearing table, and cheap argon2 settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from stich.analytics.models import VIEWER_KEY_LENGTH, AppView
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import ActorType, AuditLog
from stich.auth.models import AnonymousOwner, ApiKey, LoginThrottle, OAuthState, UserSession
from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.crypto.tokens import TokenKind, new_token
from stich.db import Database
from stich.db.base import utcnow
from stich.secrets.models import UserSecret
from stich.users.models import AuthProvider, Role, User
from tests.conftest import make_settings
from tests.factories import hasher

# argon2 at its cheapest: the tests sign in many times; the cost is not what they test.
FAST_PASSWORDS = {"argon2_time_cost": 1, "argon2_memory_cost": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery staple"
# Column names that must never appear on a Studio page.
SENSITIVE_COLUMN_NAMES = (
    "password_hash",
    "access_token_hash",
    "refresh_token_hash",
    "key_hash",
    "state_hash",
    "pkce_verifier_hash",
    "nonce_hash",
    "ciphertext",
    "anonymous_owner_hash",
    "ip_hash",
    "owner_hash",
    "email_hash",
    "viewer_key",
)


def ops_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"studio_enabled": True, **FAST_PASSWORDS}
    values.update(overrides)
    return make_settings(database_url, tmp_path, **values)


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    password: str = PASSWORD


def make_account(
    db: Database, settings: Settings, *, role: Role = Role.USER, name: str | None = None
) -> Account:
    """A user who signs in with email and password."""
    slug = name or f"a{uuid.uuid4().hex[:10]}"
    email = f"{slug}@example.test"
    with db.write() as uow:
        user = User(
            email=email,
            username=slug,
            display_name=slug.title(),
            role=role,
            password_hash=passwords_for(settings).hash(PASSWORD),
        )
        uow.session.add(user)
        uow.session.flush()
        return Account(user_id=user.id, email=email)


def make_app(
    db: Database,
    *,
    user_id: str | None,
    title: str = "Pocket Ledger",
    status: AppStatus = AppStatus.DRAFT,
    visibility: Visibility = Visibility.PRIVATE,
    anonymous_owner_hash: str | None = None,
) -> str:
    with db.write() as uow:
        app = App(
            title=title,
            user_id=user_id,
            anonymous_owner_hash=anonymous_owner_hash,
            status=status,
            visibility=visibility,
        )
        uow.session.add(app)
        uow.session.flush()
        return app.id


@dataclass(frozen=True)
class Credentials:
    """The stored credential material of every sensitive table; none may reach a page."""

    values: tuple[str, ...]


def store_credential_rows(db: Database, user_id: str) -> Credentials:
    """One row in each table holding a hash, ciphertext or token, with recognisable values."""
    now = utcnow()
    stored: list[str] = []

    def value(tag: str, length: int = 64) -> str:
        made = hasher.hash(f"{tag}-{uuid.uuid4()}", purpose="test")[:length]
        stored.append(made)
        return made

    with db.write() as uow:
        session = uow.session
        user = session.get(User, user_id)
        assert user is not None and user.password_hash is not None
        stored.append(user.password_hash)
        session.add(
            UserSession(
                user_id=user_id,
                family_id=str(uuid.uuid4()),
                access_token_hash=value("access"),
                refresh_token_hash=value("refresh"),
                ip_hash=value("session-ip"),
                access_expires_at=now + timedelta(minutes=15),
                expires_at=now + timedelta(days=30),
            )
        )
        key_token = new_token(TokenKind.API_KEY)
        session.add(
            ApiKey(
                user_id=user_id,
                name="ci",
                key_hash=value("api-key"),
                # As AuthService.create_key makes it. The user page shows it (how a person
                # tells keys apart); the key never appears, it is not even stored.
                preview=f"{key_token[:13]}...{key_token[-4:]}",
                scopes=[],
            )
        )
        stored.append(key_token)
        owner_hash = value("anonymous-owner")
        session.add(
            OAuthState(
                provider=AuthProvider.GITHUB,
                state_hash=value("state"),
                pkce_verifier_hash=value("pkce"),
                nonce_hash=value("nonce"),
                extra={"anonymous_owner_hash": owner_hash},
                expires_at=now + timedelta(minutes=10),
            )
        )
        marker = f"CIPHERTEXT-{uuid.uuid4().hex}"
        ciphertext = b"\x01k1:" + marker.encode()
        session.add(
            UserSecret(
                user_id=user_id,
                provider="openai",
                display_name="OpenAI",
                ciphertext=ciphertext,
                key_id="k1",
                preview="sk-...wxyz",
            )
        )
        stored.extend([marker, "sk-...wxyz"])
        session.add(AnonymousOwner(owner_hash=owner_hash, created_at=now))
        session.add(LoginThrottle(email_hash=value("email"), failed_attempts=2, updated_at=now))
        app = App(title="Anonymous Sketch", anonymous_owner_hash=owner_hash)
        session.add(app)
        session.flush()
        session.add(
            AppView(
                app_id=app.id,
                viewer_key=value("viewer", VIEWER_KEY_LENGTH),
                window_start=0,
                viewed_at=now,
            )
        )
        session.add(
            AuditLog(actor_type=ActorType.SYSTEM, action="test.event", ip_hash=value("audit-ip"))
        )
    return Credentials(tuple(stored))
