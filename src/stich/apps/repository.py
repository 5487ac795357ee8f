"""All SQL for apps. Reads of user-owned rows take the acting principal and apply the
visibility rule (``stich.apps.visibility``) themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import CursorResult, Delete, Select, Update, delete, func, or_, select, update
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyStats, AppDailyViewer, AppView
from stich.apps import visibility
from stich.apps.models import App
from stich.apps.schemas import Author
from stich.auth.principal import Principal
from stich.gallery.models import Favorite, Star
from stich.users.models import User


@dataclass
class PurgedBatch:
    """What one purge batch removed."""

    apps: int = 0
    stars: int = 0
    favorites: int = 0
    views: int = 0
    daily_stats: int = 0
    forks_detached: int = 0

    def add(self, other: PurgedBatch) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


class AppRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- single apps ---------------------------------------------------------------------

    def add(self, app: App) -> App:
        self.session.add(app)
        self.session.flush()
        return app

    def find_visible(
        self, app_id: str, principal: Principal | None, *, lock: bool = False
    ) -> App | None:
        """The live app if the principal may read it; locked for update when asked."""
        stmt = select(App).where(App.id == app_id, visibility.visible_to(principal))
        return self._one(stmt, lock=lock)

    def find_managed(self, app_id: str, principal: Principal, *, lock: bool = False) -> App | None:
        """The app, deleted or not, if the principal owns it (or is an admin)."""
        stmt = select(App).where(App.id == app_id, visibility.managed_by(principal))
        return self._one(stmt, lock=lock)

    def find_visible_many(
        self, app_ids: Sequence[str], principal: Principal, *, lock: bool = False
    ) -> list[App]:
        stmt = (
            select(App)
            .where(App.id.in_(app_ids), visibility.visible_to(principal))
            .order_by(App.id)  # lock in a stable order, so concurrent batches cannot deadlock
        )
        if lock:
            stmt = stmt.with_for_update()
        return list(self.session.scalars(stmt))

    def _one(self, stmt: Select[App], *, lock: bool) -> App | None:
        if lock:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def author(self, user_id: str | None) -> Author | None:
        if user_id is None:
            return None
        row = self.session.execute(
            select(User.id, User.username, User.display_name, User.avatar_url).where(
                User.id == user_id
            )
        ).one_or_none()
        if row is None:
            return None
        return Author(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
        )

    def find_visible_with_author(
        self, app_id: str, principal: Principal | None
    ) -> tuple[App, Author | None] | None:
        """The app and its author in one statement (GET /apps/{id})."""
        row = self.session.execute(
            select(App, User.id, User.username, User.display_name, User.avatar_url)
            .outerjoin(User, User.id == App.user_id)
            .where(App.id == app_id, visibility.visible_to(principal))
        ).one_or_none()
        if row is None:
            return None
        app, author_id, username, display_name, avatar_url = row
        author = None
        if author_id is not None:
            author = Author(
                id=author_id, username=username, display_name=display_name, avatar_url=avatar_url
            )
        return app, author

    # -- counters ------------------------------------------------------------------------

    def add_to_fork_count(self, app_id: str, delta: int) -> bool:
        """``fork_count = fork_count + delta`` in SQL (never read-modify-write).

        Leaves ``updated_at`` alone: a fork elsewhere is not an edit of this app. Never
        takes the count below zero; ``stich db verify`` reports any drift.
        """
        stmt = (
            update(App)
            .where(App.id == app_id)
            .values(fork_count=App.fork_count + delta, updated_at=App.updated_at)
            .execution_options(synchronize_session="fetch")
        )
        if delta < 0:
            stmt = stmt.where(App.fork_count >= -delta)
        return _rowcount(self.session.execute(stmt)) == 1

    # -- users ---------------------------------------------------------------------------

    def find_user(self, id_or_username: str, *, lock: bool = False) -> User | None:
        """A user by id or by username (usernames are stored lower-case)."""
        stmt = select(User).where(
            or_(User.id == id_or_username, User.username == id_or_username.lower())
        )
        if lock:
            # Hold the account steady (no concurrent deactivation) until we commit.
            stmt = stmt.with_for_update(read=True)
        return self.session.scalars(stmt).first()

    # -- purge ---------------------------------------------------------------------------

    def count_deleted_before(self, cutoff: datetime) -> int:
        return self.session.execute(
            select(func.count()).select_from(App).where(App.deleted_at < cutoff)
        ).scalar_one()

    def deleted_before(self, cutoff: datetime, limit: int) -> list[tuple[str, str | None]]:
        """(id, owner user id) of apps deleted before ``cutoff``, oldest first, locked.

        ``SKIP LOCKED`` lets two purges run side by side without waiting on each other.
        """
        stmt = (
            select(App.id, App.user_id)
            .where(App.deleted_at < cutoff)
            .order_by(App.deleted_at, App.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [(row.id, row.user_id) for row in self.session.execute(stmt)]

    def purge(self, app_ids: Sequence[str]) -> PurgedBatch:
        """Hard-delete apps and everything hanging off them; forks live on, detached."""
        if not app_ids:
            return PurgedBatch()
        ids = list(app_ids)
        batch = PurgedBatch()
        batch.stars = self._execute(delete(Star).where(Star.app_id.in_(ids)))
        batch.favorites = self._execute(delete(Favorite).where(Favorite.app_id.in_(ids)))
        batch.views = self._execute(delete(AppView).where(AppView.app_id.in_(ids)))
        # No foreign key cascades to the views tables (they are shaped for ingest speed).
        self._execute(delete(AppDailyViewer).where(AppDailyViewer.app_id.in_(ids)))
        batch.daily_stats = self._execute(
            delete(AppDailyStats).where(AppDailyStats.app_id.in_(ids))
        )
        batch.forks_detached = self._execute(
            update(App)
            .where(App.parent_app_id.in_(ids), App.id.not_in(ids))
            .values(parent_app_id=None, updated_at=App.updated_at)
        )
        batch.apps = self._execute(delete(App).where(App.id.in_(ids)))
        return batch

    def _execute(self, stmt: Delete | Update) -> int:
        """Run a bulk statement (the session holds none of these rows) and count rows."""
        result = self.session.execute(stmt.execution_options(synchronize_session=False))
        return _rowcount(result)
