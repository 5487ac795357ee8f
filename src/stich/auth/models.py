"""Sessions, API keys and OAuth states. Bearer credentials are stored only as keyed hashes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from stich.db.base import (
    ID_LENGTH,
    Base,
    JSONType,
    UTCDateTime,
    enum_column,
    id_column,
    utcnow,
)
from stich.users.models import AuthProvider

TOKEN_HASH_LENGTH = 64  # hex HMAC-SHA256


class DeviceType(StrEnum):
    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"
    BOT = "bot"
    UNKNOWN = "unknown"


class UserSession(Base):
    """One access/refresh token pair. Refresh rotation inserts a new row in the same family
    and marks the old one revoked, so a replayed refresh token is recognised (theft)."""

    __tablename__ = "sessions"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    family_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False, index=True)
    access_token_hash: Mapped[str] = mapped_column(
        String(TOKEN_HASH_LENGTH), unique=True, nullable=False
    )
    refresh_token_hash: Mapped[str] = mapped_column(
        String(TOKEN_HASH_LENGTH), unique=True, nullable=False
    )
    replaced_by_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    device_name: Mapped[str | None] = mapped_column(String(100))
    device_type: Mapped[DeviceType] = mapped_column(
        enum_column(DeviceType, "session_device_type"), default=DeviceType.UNKNOWN, nullable=False
    )
    os: Mapped[str | None] = mapped_column(String(50))
    browser: Mapped[str | None] = mapped_column(String(50))
    ip_hash: Mapped[str | None] = mapped_column(String(TOKEN_HASH_LENGTH))
    ip_masked: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    country: Mapped[str | None] = mapped_column(String(2))
    city: Mapped[str | None] = mapped_column(String(100))
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    def __repr__(self) -> str:
        return f"UserSession(id={self.id!r}, user_id={self.user_id!r})"


Index("ix_sessions_user_id_expires_at", UserSession.user_id, UserSession.expires_at)
Index("ix_sessions_expires_at", UserSession.expires_at)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True, nullable=False)
    preview: Mapped[str] = mapped_column(String(32), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    usage_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, preview={self.preview!r})"


class OAuthState(Base):
    """A pending OAuth authorisation. The state, PKCE verifier and nonce are stored hashed;
    consumption is a single ``UPDATE ... WHERE consumed_at IS NULL``."""

    __tablename__ = "oauth_states"

    id: Mapped[str] = id_column()
    provider: Mapped[AuthProvider] = mapped_column(
        enum_column(AuthProvider, "oauth_provider"), nullable=False
    )
    state_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True, nullable=False)
    pkce_verifier_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), nullable=False)
    nonce_hash: Mapped[str | None] = mapped_column(String(TOKEN_HASH_LENGTH))
    redirect_to: Mapped[str | None] = mapped_column(String(2048))
    link_user_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE")
    )
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class AnonymousOwner(Base):
    """An issued anonymous token, by keyed hash (the value apps.anonymous_owner_hash holds).

    Once its apps are claimed by an account the token is dead: ``claimed_at`` is set
    exactly once (a conditional upsert), so two accounts can never both claim it.
    """

    __tablename__ = "anonymous_owners"

    owner_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by_user_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="SET NULL")
    )


class LoginThrottle(Base):
    """Failed sign-ins for an email that has no account, keyed by the email's keyed hash.

    Accounts count failures on their own row; unknown emails count here, with the same
    schedule, so the answers do not reveal whether an account exists.
    """

    __tablename__ = "login_throttles"

    email_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, nullable=False, index=True
    )


class EmailTokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
    CHANGE_EMAIL = "change_email"


class EmailToken(Base):
    """A single-use link sent by mail (verification, reset, email change), by keyed hash.

    ``email`` is the address the link was sent to: the account's address for a
    verification or reset (the link proves that address, so it is void once the account's
    address differs), the new address for a change. Consuming is one conditional
    ``UPDATE … WHERE used_at IS NULL AND expires_at > now RETURNING``.
    """

    __tablename__ = "email_tokens"

    id: Mapped[str] = id_column()
    purpose: Mapped[EmailTokenPurpose] = mapped_column(
        enum_column(EmailTokenPurpose, "email_token_purpose"), nullable=False
    )
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True, nullable=False)
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


Index("ix_email_tokens_user_id_purpose", EmailToken.user_id, EmailToken.purpose)


class EmailCooldown(Base):
    """When a mail of a purpose last went to an address, keyed by a keyed hash of both.

    Written for unknown addresses too, so a request costs the same either way.
    """

    __tablename__ = "email_cooldowns"

    key_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), primary_key=True)
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
