"""Recording audit events. Services call this inside their unit of work, so an event is
committed with the change it describes, or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from stich.audit.models import ActorType, AuditLog
from stich.auth.principal import Principal, PrincipalKind


@dataclass(frozen=True)
class RequestMeta:
    """Where an action came from. The IP is a keyed hash; never the address."""

    ip_hash: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls) -> RequestMeta:
        return cls()


def _actor(principal: Principal | None) -> tuple[ActorType, str | None]:
    if principal is None:
        return ActorType.SYSTEM, None
    if principal.kind is PrincipalKind.ANONYMOUS:
        return ActorType.ANONYMOUS, None
    if principal.api_key_id is not None:
        return ActorType.API_KEY, principal.user_id
    return ActorType.USER, principal.user_id


class AuditService:
    def __init__(self, session: Session, meta: RequestMeta | None = None) -> None:
        self.session = session
        self.meta = meta or RequestMeta.system()

    def record(
        self,
        action: str,
        *,
        actor: Principal | None,
        subject_user_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        old: dict[str, Any] | None = None,
        new: dict[str, Any] | None = None,
    ) -> AuditLog:
        actor_type, actor_id = _actor(actor)
        entry = AuditLog(
            actor_type=actor_type,
            actor_id=actor_id,
            subject_user_id=subject_user_id if subject_user_id is not None else actor_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            old_values=old,
            new_values=new,
            ip_hash=self.meta.ip_hash,
            user_agent=self.meta.user_agent[:512] if self.meta.user_agent else None,
            request_id=self.meta.request_id,
        )
        self.session.add(entry)
        return entry
