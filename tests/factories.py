"""Test data made directly through the models (independent of the services under test)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from stich.auth.anonymous import mint_anonymous_token
from stich.auth.models import UserSession
from stich.crypto.tokens import KeyedHasher, TokenKind, new_token
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role, User
from tests.conftest import TEST_SERVER_KEY

hasher = KeyedHasher(TEST_SERVER_KEY.encode())


@dataclass
class SignedIn:
    user_id: str
    email: str
    username: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def make_user(db: Database, *, role: Role = Role.USER, name: str | None = None) -> SignedIn:
    """A user with a live session; returns its access token (only its hash is stored)."""
    slug = name or f"u{uuid.uuid4().hex[:10]}"
    token = new_token(TokenKind.ACCESS)
    now = utcnow()
    with db.write() as uow:
        user = User(
            email=f"{slug}@example.test", username=slug, display_name=slug.title(), role=role
        )
        uow.session.add(user)
        uow.session.flush()
        uow.session.add(
            UserSession(
                user_id=user.id,
                family_id=str(uuid.uuid4()),
                access_token_hash=hasher.token_hash(token),
                refresh_token_hash=hasher.token_hash(new_token(TokenKind.REFRESH)),
                access_expires_at=now + timedelta(minutes=15),
                expires_at=now + timedelta(days=30),
            )
        )
        user_id = user.id
    return SignedIn(
        user_id=user_id, email=f"{slug}@example.test", username=slug, access_token=token
    )


def anonymous_token() -> tuple[str, str]:
    """(token, owner hash) for an anonymous visitor, as POST /auth/anonymous issues it
    (the token carries a server-key tag, so a made-up one is refused)."""
    token = mint_anonymous_token(hasher)
    return token, hasher.token_hash(token)
