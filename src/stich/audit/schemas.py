"""The audit trail as its subject sees it (GET /me/audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from stich.audit.models import ActorType


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    action: str
    actor_type: ActorType
    actor_id: str | None
    resource_type: str | None
    resource_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
    has_more: bool
