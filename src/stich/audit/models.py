"""The audit trail. Rows outlive the users and apps they mention, so no foreign keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from stich.auth.models import TOKEN_HASH_LENGTH
from stich.db.base import ID_LENGTH, Base, JSONType, UTCDateTime, enum_column, id_column, utcnow


class ActorType(StrEnum):
    USER = "user"
    ANONYMOUS = "anonymous"
    API_KEY = "api_key"
    SYSTEM = "system"


class AuditLog(Base):
    __tablename__ = "audit_logs"

    id: Mapped[str] = id_column()
    actor_type: Mapped[ActorType] = mapped_column(
        enum_column(ActorType, "actor_type"), nullable=False
    )
    actor_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    # The account the event concerns (e.g. the target of a failed login), for GET /me/audit.
    subject_user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip_hash: Mapped[str | None] = mapped_column(String(TOKEN_HASH_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


Index("ix_audit_logs_subject", AuditLog.subject_user_id, AuditLog.created_at, AuditLog.id)
Index("ix_audit_logs_actor", AuditLog.actor_id, AuditLog.created_at)
Index("ix_audit_logs_resource", AuditLog.resource_type, AuditLog.resource_id)
Index("ix_audit_logs_created_at", AuditLog.created_at)
