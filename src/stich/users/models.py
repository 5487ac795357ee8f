"""Accounts and their linked sign-in identities."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stich.db.base import (
    ID_LENGTH,
    Base,
    JSONType,
    SoftDeleteMixin,
    TimestampMixin,
    UTCDateTime,
    enum_column,
    id_column,
    utcnow,
)


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class AuthProvider(StrEnum):
    EMAIL = "email"
    GITHUB = "github"
    GOOGLE = "google"


class Theme(StrEnum):
    LIGHT = "light"
    DARK = "dark"
    SYSTEM = "system"


class User(TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = id_column()
    # Stored normalised (trimmed, lower-cased), so uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    # Lower-case letters, digits, '-' and '_' only; unique.
    username: Mapped[str | None] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    bio: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[AuthProvider] = mapped_column(
        enum_column(AuthProvider, "auth_provider"), default=AuthProvider.EMAIL, nullable=False
    )
    provider_id: Mapped[str | None] = mapped_column(String(255))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    failed_login_attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    preferences: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    theme: Mapped[Theme] = mapped_column(
        enum_column(Theme, "theme"), default=Theme.SYSTEM, nullable=False
    )
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", nullable=False)
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"), default=Role.USER, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    is_suspended: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:  # never show credentials
        return f"User(id={self.id!r}, username={self.username!r})"


class UserIdentity(Base):
    """A sign-in identity at an OAuth provider; a user may have several."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("provider", "provider_id"),)

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[AuthProvider] = mapped_column(
        enum_column(AuthProvider, "identity_provider"), nullable=False
    )
    provider_id: Mapped[str] = mapped_column(String(255), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


Index("ix_users_created_at", User.created_at, User.id)
