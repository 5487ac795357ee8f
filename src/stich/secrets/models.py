"""Encrypted provider API keys. Ciphertext is AES-256-GCM bound to the row and owner."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from stich.db.base import (
    ID_LENGTH,
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    UTCDateTime,
    enum_column,
    id_column,
)


class SecretType(StrEnum):
    API_KEY = "api_key"
    ACCESS_TOKEN = "access_token"  # noqa: S105 (a kind of secret, not one)
    OTHER = "other"


class UserSecret(TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "user_secrets"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    provider: Mapped[str] = mapped_column(String(50), nullable=False)
    secret_type: Mapped[SecretType] = mapped_column(
        enum_column(SecretType, "secret_type"), default=SecretType.API_KEY, nullable=False
    )
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    # Versioned envelope (format byte, key id, nonce, ciphertext+tag); NULL once deleted.
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(32))
    preview: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    usage_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:  # never the value, never the ciphertext
        return f"UserSecret(id={self.id!r}, provider={self.provider!r})"


Index("ix_user_secrets_user_created", UserSecret.user_id, UserSecret.created_at)
Index("ix_user_secrets_key_id", UserSecret.key_id)
