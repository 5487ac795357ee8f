"""The Studio's own SQL: the admin's sign-in, the rows its pages show beside a list (owners,
app counts, audit links, one query per page whatever its size), and an account's unlock."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import AuditLog
from stich.auth.models import ApiKey, UserSession
from stich.users.models import User

# Which audit resource types have a Studio page, by the model holding their id.
LINKED_RESOURCES: dict[str, type[App] | type[User] | type[ApiKey]] = {
    "app": App,
    "user": User,
    "api_key": ApiKey,
}


@dataclass(frozen=True)
class UserRef:
    id: str
    display_name: str
    username: str | None
    email: str


@dataclass(frozen=True)
class AppRef:
    """An app as a line in another page's list (the owner's apps, forks, the parent)."""

    id: str
    title: str
    user_id: str | None
    status: AppStatus
    visibility: Visibility
    is_archived: bool
    star_count: int
    view_count: int
    fork_count: int
    created_at: datetime
    deleted_at: datetime | None


_APP_REF_COLUMNS = (
    App.id,
    App.title,
    App.user_id,
    App.status,
    App.visibility,
    App.is_archived,
    App.star_count,
    App.view_count,
    App.fork_count,
    App.created_at,
    App.deleted_at,
)


class StudioRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- sign-in and manage pages ---------------------------------------------------------

    def session_with_user(self, session_id: str) -> tuple[UserSession, User] | None:
        """A sign-in session and its account, whatever their state (the caller judges)."""
        row = self.session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.id == session_id)
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def account(self, user_id: str) -> User | None:
        return self.session.get(User, user_id)

    def app(self, app_id: str) -> App | None:
        """Any app by id, deleted or not (the caller is an admin)."""
        return self.session.get(App, app_id)

    # -- beside a list page ------------------------------------------------------------

    def users_by_id(self, user_ids: Collection[str]) -> dict[str, UserRef]:
        """Names of the given accounts (deleted ones too: an app or entry still names them)."""
        if not user_ids:
            return {}
        rows = self.session.execute(
            select(User.id, User.display_name, User.username, User.email).where(
                User.id.in_(sorted(user_ids))
            )
        )
        return {row.id: UserRef(row.id, row.display_name, row.username, row.email) for row in rows}

    def live_app_counts(self, user_ids: Collection[str]) -> dict[str, int]:
        """Apps (not deleted) per account, for one page of accounts (owner index)."""
        if not user_ids:
            return {}
        # Deleted ones are left out by the sum, not the WHERE clause: given
        # "deleted_at IS NULL" SQLite walks ix_apps_deleted_at (every live app, 55 ms on
        # 100k) instead of the owner index (0.05 ms).
        live = func.sum(case((App.deleted_at.is_(None), 1), else_=0))
        rows = self.session.execute(
            select(App.user_id, live).where(App.user_id.in_(sorted(user_ids))).group_by(App.user_id)
        )
        return {str(user_id): int(count) for user_id, count in rows}

    def existing_ids(self, resource_type: str, ids: Collection[str]) -> set[str]:
        """Which of ``ids`` still have a row (so a link to their page would not 404)."""
        model = LINKED_RESOURCES.get(resource_type)
        if model is None or not ids:
            return set()
        return set(self.session.scalars(select(model.id).where(model.id.in_(sorted(ids)))))

    # -- an app's page -------------------------------------------------------------------

    def app_ref(self, app_id: str) -> AppRef | None:
        row = self.session.execute(select(*_APP_REF_COLUMNS).where(App.id == app_id)).one_or_none()
        return None if row is None else AppRef(*row)

    def forks(self, app_id: str, limit: int) -> tuple[list[AppRef], int]:
        """The newest forks of an app (deleted ones too) and how many there are."""
        rows = self.session.execute(
            select(*_APP_REF_COLUMNS)
            .where(App.parent_app_id == app_id)
            .order_by(App.created_at.desc(), App.id.desc())
            .limit(limit)
        )
        total = self.session.scalar(
            select(func.count()).select_from(App).where(App.parent_app_id == app_id)
        )
        return [AppRef(*row) for row in rows], total or 0

    # -- a user's page -------------------------------------------------------------------

    def apps_of(self, user_id: str, limit: int) -> tuple[list[AppRef], int]:
        """An account's newest apps (deleted ones too) and how many it has in all."""
        rows = self.session.execute(
            select(*_APP_REF_COLUMNS)
            .where(App.user_id == user_id)
            .order_by(App.created_at.desc(), App.id.desc())
            .limit(limit)
        )
        total = self.session.scalar(
            select(func.count()).select_from(App).where(App.user_id == user_id)
        )
        return [AppRef(*row) for row in rows], total or 0

    def audit_about(self, user_id: str, limit: int) -> list[AuditLog]:
        """The newest entries the account did or that concern it (two index walks)."""
        by_subject = select(AuditLog).where(AuditLog.subject_user_id == user_id)
        by_actor = select(AuditLog).where(AuditLog.actor_id == user_id)
        entries: dict[str, AuditLog] = {}
        for query in (by_subject, by_actor):
            newest = query.order_by(AuditLog.created_at.desc(), AuditLog.id.desc()).limit(limit)
            for entry in self.session.scalars(newest):
                entries[entry.id] = entry
        ordered = sorted(entries.values(), key=lambda e: (e.created_at, e.id), reverse=True)
        return ordered[:limit]

    def unlock(self, user_id: str) -> tuple[int, datetime | None]:
        """Clear the account's failed sign-ins and lock; returns what they were."""
        before = self.session.execute(
            select(User.failed_login_attempts, User.locked_until)
            .where(User.id == user_id)
            .with_for_update()
        ).one()
        self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(failed_login_attempts=0, locked_until=None, updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        )
        return before.failed_login_attempts, before.locked_until
