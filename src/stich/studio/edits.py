"""The Studio's edits. Each one goes through the service that owns the rule (``AppService``,
``UserService``), in one unit of work, with the admin as the acting principal, so state
transitions are checked, counters and the gallery's feed counts stay right, and the audit
trail records the admin. Where a service records no audit entry of its own for a change
(a status move), the Studio records one in the same transaction: every edit is audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.orm import Session

from stich.apps import state_machine
from stich.apps.models import App, AppStatus, Visibility
from stich.apps.repository import AppRepository
from stich.apps.schemas import Deployment, StatusChange
from stich.apps.service import AppService, app_not_found
from stich.audit.models import AuditLog
from stich.audit.service import AuditService, RequestMeta
from stich.auth.email_service import EmailFlows, Purpose
from stich.auth.principal import Principal
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import Conflict, Invalid, NotFound
from stich.mail.sender import send_after_commit
from stich.studio.repository import StudioRepository
from stich.users.service import UserService


class AppEdit(StrEnum):
    VISIBILITY = "visibility"
    STATUS = "status"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    FEATURE = "feature"
    UNFEATURE = "unfeature"
    DELETE = "delete"
    RESTORE = "restore"
    TRANSFER = "transfer"


_E = TypeVar("_E", bound=StrEnum)

# What an app edit may change, for the audit entry the Studio writes when a service did not.
_APP_FIELDS = ("status", "visibility", "is_archived", "is_featured", "deleted_at", "user_id")


@dataclass(frozen=True)
class AppState:
    """What the manage page shows of an app."""

    id: str
    title: str
    user_id: str | None
    status: AppStatus
    visibility: Visibility
    is_archived: bool
    is_featured: bool
    deleted_at: datetime | None
    next_statuses: list[str]


@dataclass(frozen=True)
class UserState:
    id: str
    email: str
    username: str | None
    role: str
    is_suspended: bool
    deleted: bool
    email_verified: bool = False


class StudioEdits:
    """Reads for the manage pages and the edits behind their forms (sync: run in a thread)."""

    def __init__(
        self, database: Database, settings: Settings, meta: RequestMeta, admin: Principal
    ) -> None:
        self.database = database
        self.meta = meta
        self.admin = admin
        self.retention = timedelta(days=settings.app_retention_days)
        self.settings = settings

    # -- apps ------------------------------------------------------------------------

    def app_state(self, app_id: str) -> AppState | None:
        with self.database.read("fresh") as uow:
            app = StudioRepository(uow.session).app(app_id)
            return None if app is None else _app_state(app)

    def edit_app(
        self, app_id: str, edit: AppEdit, value: str = "", deployment_url: str = ""
    ) -> str:
        """Apply one edit; returns what happened, or raises a StichError saying why not."""
        with self.database.write() as uow:
            app = AppRepository(uow.session).find_managed(app_id, self.admin, lock=True)
            if app is None:
                raise app_not_found()
            before = _fields(app)
            service = AppService(uow.session, self.meta, retention=self.retention)
            with recorded_audit(uow.session) as recorded:
                message = self._apply(service, app, edit, value, deployment_url)
            after = _fields(app)
            changed = {name for name in _APP_FIELDS if before[name] != after[name]}
            if changed and not recorded:
                AuditService(uow.session, self.meta).record(
                    f"app.{edit.value}",
                    actor=self.admin,
                    subject_user_id=app.user_id,
                    resource_type="app",
                    resource_id=app.id,
                    old={name: before[name] for name in sorted(changed)},
                    new={name: after[name] for name in sorted(changed)},
                )
        return message

    def _apply(
        self, service: AppService, app: App, edit: AppEdit, value: str, deployment_url: str
    ) -> str:
        admin, app_id = self.admin, app.id
        if edit is AppEdit.VISIBILITY:
            visibility = _parse(Visibility, value, "visibility")
            service.set_visibility(admin, app_id, visibility)
            return f"Visibility set to {visibility.value}."
        if edit is AppEdit.STATUS:
            service.change_status(admin, app_id, _status_change(value, deployment_url))
            return f"Status set to {value}."
        if edit in (AppEdit.ARCHIVE, AppEdit.UNARCHIVE):
            service.set_archived(admin, app_id, edit is AppEdit.ARCHIVE)
            return "Archived." if edit is AppEdit.ARCHIVE else "Unarchived."
        if edit in (AppEdit.FEATURE, AppEdit.UNFEATURE):
            service.set_featured(admin, app_id, edit is AppEdit.FEATURE)
            return "Featured." if edit is AppEdit.FEATURE else "No longer featured."
        if edit is AppEdit.DELETE:
            if app.deleted_at is not None:
                raise Conflict("the app is already deleted", code="already_deleted")
            service.delete(admin, app_id)
            return "Deleted (restorable during the retention period)."
        if edit is AppEdit.TRANSFER:
            if not value.strip():
                raise Invalid("name the receiving account (username or id)", code="invalid_user")
            moved = service.transfer(admin, app_id, value.strip()[:64])
            return f"Transferred to {moved.to_username or moved.to_user_id}."
        service.restore(admin, app_id)
        return "Restored."

    # -- users -----------------------------------------------------------------------

    def user_state(self, user_id: str) -> UserState | None:
        with self.database.read("fresh") as uow:
            user = StudioRepository(uow.session).account(user_id)
            if user is None:
                return None
            return UserState(
                id=user.id,
                email=user.email,
                username=user.username,
                role=user.role.value,
                is_suspended=user.is_suspended,
                deleted=user.deleted_at is not None,
                email_verified=user.email_verified,
            )

    def resend_verification(self, user_id: str) -> str:
        """A new verification link to the account's address (issue 15), sent after commit."""
        hasher = KeyedHasher(self.settings.server_key_bytes())
        with self.database.write() as uow:
            user = StudioRepository(uow.session).account(user_id)
            if user is None or user.deleted_at is not None:
                raise NotFound("no such user", code="user_not_found")
            if user.email_verified:
                raise Conflict("this address is already verified", code="email_verified")
            flows = EmailFlows.for_settings(uow.session, self.meta, hasher, self.settings)
            sent = flows.request_for_address(
                Purpose.VERIFY_EMAIL, user.email, utcnow(), by_operator=True, actor=self.admin
            )
        if not sent:
            raise Conflict("this account cannot sign in; nothing was sent", code="not_sent")
        send_after_commit(self.settings, flows.outgoing)
        return "Verification link sent."

    def set_suspended(self, user_id: str, suspended: bool) -> str:
        if suspended and user_id == self.admin.user_id:
            raise Conflict("you cannot suspend your own account", code="cannot_suspend_self")
        with self.database.write() as uow:
            user = StudioRepository(uow.session).account(user_id)
            if user is None or user.deleted_at is not None:
                raise NotFound("no such user", code="user_not_found")
            was = user.is_suspended
            with recorded_audit(uow.session) as recorded:
                UserService(uow.session, self.meta).set_suspended(user.email, suspended, self.admin)
            if was != suspended and not recorded:
                AuditService(uow.session, self.meta).record(
                    "user.suspended" if suspended else "user.unsuspended",
                    actor=self.admin,
                    subject_user_id=user.id,
                    resource_type="user",
                    resource_id=user.id,
                    old={"is_suspended": was},
                    new={"is_suspended": suspended},
                )
        return "Suspended." if suspended else "Suspension lifted."


@contextmanager
def recorded_audit(session: Session) -> Iterator[list[AuditLog]]:
    """The audit entries added to ``session`` while the block runs."""
    entries: list[AuditLog] = []

    def on_add(_session: Session, instance: object) -> None:
        if isinstance(instance, AuditLog):
            entries.append(instance)

    event.listen(session, "transient_to_pending", on_add)
    try:
        yield entries
    finally:
        event.remove(session, "transient_to_pending", on_add)


def _app_state(app: App) -> AppState:
    return AppState(
        id=app.id,
        title=app.title,
        user_id=app.user_id,
        status=app.status,
        visibility=app.visibility,
        is_archived=app.is_archived,
        is_featured=app.is_featured,
        deleted_at=app.deleted_at,
        next_statuses=state_machine.allowed_next(app.status),
    )


def _fields(app: App) -> dict[str, Any]:
    values = {name: getattr(app, name) for name in _APP_FIELDS}
    deleted_at = values["deleted_at"]
    values["deleted_at"] = deleted_at.isoformat() if deleted_at is not None else None
    return {name: getattr(value, "value", value) for name, value in values.items()}


def _parse(kind: type[_E], value: str, what: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise Invalid(f"{what} must be one of {allowed}", code=f"invalid_{what}") from None


def _status_change(value: str, deployment_url: str) -> StatusChange:
    status = _parse(AppStatus, value, "status")
    try:
        deployment = (
            Deployment.model_validate({"url": deployment_url.strip()})
            if status is AppStatus.DEPLOYED
            else None
        )
        return StatusChange(status=status, deployment=deployment)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "is invalid")
        raise Invalid(f"cannot set that status: {reason}", code="invalid_status") from None
