"""The Studio's edits of someone else's sign-ins: revoke a session or an API key, sign out
everywhere, lift a sign-in lock.

``AuthService`` scopes these to the acting principal's own account (a user revoking
their own session), so an admin acting on another account goes through the same
repository writes with the admin as the audit actor and the account as the subject, in
one unit of work: the change and its audit entry commit together or not at all.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from stich.audit.service import AuditService, RequestMeta
from stich.auth.principal import Principal
from stich.auth.repository import AuthRepository
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import Conflict, NotFound
from stich.studio.repository import StudioRepository

REVOKED_BY_ADMIN = "revoked_by_admin"


class AccountEdits:
    """Sync: run in a thread."""

    def __init__(self, database: Database, meta: RequestMeta, admin: Principal) -> None:
        self.database = database
        self.meta = meta
        self.admin = admin

    def revoke_session(self, user_id: str, family_id: str) -> str:
        with self.database.write() as uow:
            revoked = AuthRepository(uow.session).revoke_families(
                user_id, utcnow(), REVOKED_BY_ADMIN, only=[family_id[:64]]
            )
            if not revoked:
                raise NotFound("no such active session", code="session_not_found")
            self._audit(uow.session, "auth.session_revoked", user_id, "session", family_id)
        return "Session revoked: that device is signed out."

    def sign_out_everywhere(self, user_id: str) -> str:
        with self.database.write() as uow:
            self._live_account(uow.session, user_id)
            revoked = AuthRepository(uow.session).revoke_families(
                user_id, utcnow(), REVOKED_BY_ADMIN
            )
            if not revoked:
                raise Conflict("the account has no active sessions", code="no_sessions")
            self._audit(
                uow.session,
                "auth.sessions_revoked",
                user_id,
                "session",
                None,
                new={"sessions": revoked},
            )
        return f"Signed out everywhere ({len(revoked)} session(s) revoked)."

    def revoke_key(self, user_id: str, key_id: str) -> str:
        with self.database.write() as uow:
            key = AuthRepository(uow.session).revoke_key(user_id, key_id[:64], utcnow())
            if key is None:
                raise NotFound("no such API key", code="api_key_not_found")
            self._audit(
                uow.session, "auth.key_revoked", user_id, "api_key", key.id, old={"name": key.name}
            )
        return f"API key {key.name!r} revoked."

    def unlock(self, user_id: str) -> str:
        with self.database.write() as uow:
            self._live_account(uow.session, user_id)
            failures, locked_until = StudioRepository(uow.session).unlock(user_id)
            if failures == 0 and locked_until is None:
                raise Conflict("the account has no failed sign-ins to clear", code="not_locked")
            self._audit(
                uow.session,
                "user.unlocked",
                user_id,
                "user",
                user_id,
                old={
                    "failed_login_attempts": failures,
                    "locked_until": locked_until.isoformat() if locked_until else None,
                },
                new={"failed_login_attempts": 0, "locked_until": None},
            )
        return "Unlocked: failed sign-ins cleared."

    def _live_account(self, session: Session, user_id: str) -> None:
        user = StudioRepository(session).account(user_id)
        if user is None or user.deleted_at is not None:
            raise NotFound("no such user", code="user_not_found")

    def _audit(
        self,
        session: Session,
        action: str,
        user_id: str,
        resource_type: str,
        resource_id: str | None,
        *,
        old: dict[str, object] | None = None,
        new: dict[str, object] | None = None,
    ) -> None:
        AuditService(session, self.meta).record(
            action,
            actor=self.admin,
            subject_user_id=user_id,
            resource_type=resource_type,
            resource_id=resource_id,
            old=old,
            new=new,
        )
