"""All SQL for accounts: lookups, the sign-in failure counter, profile writes, deletion and
the account export."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Row, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyStats
from stich.analytics.sql import table_of
from stich.apps.models import App
from stich.apps.repository import AppRepository
from stich.auth.models import ApiKey, UserSession
from stich.auth.repository import affected_rows
from stich.gallery.models import Favorite, Star
from stich.secrets.models import UserSecret
from stich.users.models import User, UserIdentity

# Sign-in bookkeeping is not a profile change: these writes keep updated_at as it is
# (the column's onupdate would otherwise move it).
_KEEP_UPDATED_AT = {"updated_at": User.updated_at}

# Columns an export never contains: credential hashes and ciphertext.
_NEVER_EXPORTED = frozenset(
    {
        "password_hash",
        "access_token_hash",
        "refresh_token_hash",
        "key_hash",
        "ciphertext",
        "ip_hash",
        "anonymous_owner_hash",
        "failed_login_attempts",
        "locked_until",
    }
)


def _exportable(table: FromClause) -> list[Any]:
    return [column for column in table.columns if column.name not in _NEVER_EXPORTED]


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_id(self, user_id: str) -> User | None:
        return self.session.get(User, user_id)

    def by_id_for_update(self, user_id: str) -> User | None:
        return self.session.scalars(
            select(User).where(User.id == user_id).with_for_update()
        ).one_or_none()

    def by_email(self, email: str) -> User | None:
        return self.session.scalars(select(User).where(User.email == email)).one_or_none()

    def by_email_for_update(self, email: str) -> User | None:
        return self.session.scalars(
            select(User).where(User.email == email).with_for_update()
        ).one_or_none()

    def email_taken(self, email: str) -> bool:
        return self.session.scalar(select(User.id).where(User.email == email)) is not None

    def username_taken(self, username: str, *, other_than: str | None = None) -> bool:
        query = select(User.id).where(User.username == username)
        if other_than is not None:
            query = query.where(User.id != other_than)
        return self.session.scalar(query) is not None

    def add(self, user: User) -> User:
        self.session.add(user)
        self.session.flush()
        return user

    # -- sign-in failures (atomic; never read-modify-write) -----------------------------

    def count_failure(self, user_id: str) -> int:
        attempts: int = self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(failed_login_attempts=User.failed_login_attempts + 1, **_KEEP_UPDATED_AT)
            .returning(User.failed_login_attempts)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        return attempts

    def locked_until(self, user_id: str) -> datetime | None:
        return self.session.scalar(select(User.locked_until).where(User.id == user_id))

    def lock(self, user_id: str, until: datetime) -> None:
        self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(locked_until=until, **_KEEP_UPDATED_AT)
            .execution_options(synchronize_session=False)
        )

    def clear_failures_unless_locked(self, user_id: str, now: datetime) -> bool:
        """Reset the counter after a correct password, unless a concurrent failure has
        just locked the account (then False, and the sign-in is refused)."""
        return bool(
            affected_rows(
                self.session.execute(
                    update(User)
                    .where(
                        User.id == user_id,
                        or_(User.locked_until.is_(None), User.locked_until <= now),
                    )
                    .values(
                        failed_login_attempts=0,
                        locked_until=None,
                        last_active_at=now,
                        **_KEEP_UPDATED_AT,
                    )
                    .execution_options(synchronize_session=False)
                )
            )
        )

    def replace_password_hash(
        self, user_id: str, new_hash: str, *, expected: str | None, now: datetime, changed: bool
    ) -> bool:
        """Swap the hash only if it is still the one the caller verified against."""
        condition: ColumnElement[bool] = (
            User.password_hash.is_(None) if expected is None else User.password_hash == expected
        )
        values: dict[str, Any] = {"password_hash": new_hash}
        if changed:
            values["password_changed_at"] = now
        return bool(
            affected_rows(
                self.session.execute(
                    update(User)
                    .where(User.id == user_id, condition)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            )
        )

    # -- account deletion -----------------------------------------------------------------

    def soft_delete_owned(self, user_id: str, now: datetime) -> dict[str, int]:
        """Retire what the account owns: its live apps (soft-deleted, so the apps rules for
        restore/purge still apply) and its secrets (ciphertext erased)."""
        # A deleted fork no longer counts on its parent, as when one app is deleted.
        forks_per_parent = self.session.execute(
            select(App.parent_app_id, func.count())
            .where(
                App.user_id == user_id,
                App.deleted_at.is_(None),
                App.parent_app_id.is_not(None),
            )
            .group_by(App.parent_app_id)
        ).all()
        apps_repo = AppRepository(self.session)
        for parent_id, forks in forks_per_parent:
            if parent_id is not None:
                apps_repo.add_to_fork_count(parent_id, -forks)
        apps = affected_rows(
            self.session.execute(
                update(App)
                .where(App.user_id == user_id, App.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        secrets = affected_rows(
            self.session.execute(
                update(UserSecret)
                .where(UserSecret.user_id == user_id, UserSecret.deleted_at.is_(None))
                .values(deleted_at=now, ciphertext=None, is_active=False, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        return {"apps": apps, "secrets": secrets}

    # -- hard deletion --------------------------------------------------------------------

    def withdraw_reactions(self, user_id: str) -> dict[str, int]:
        """Take back every star and favorite the account gave, with the app counters and
        the daily star rollups they feed, so a hard delete leaves every count true.

        The rows are deleted first (``RETURNING`` what went) and only what this statement
        removed is subtracted: a concurrent unstar of the same row cannot count twice.
        """
        taken: dict[str, int] = {}
        for model, counter in ((Star, App.star_count), (Favorite, App.favorite_count)):
            gone = self.session.execute(
                delete(model)
                .where(model.user_id == user_id)
                .returning(model.app_id, model.created_at)
                .execution_options(synchronize_session=False)
            ).all()
            taken[model.__tablename__] = len(gone)
            if not gone:
                continue
            # One star per user and app, so each app loses exactly one. One statement,
            # executed for many rows (no bound on how many apps were starred).
            apps = table_of(App)
            self.session.execute(
                update(apps)
                .where(apps.c.id == bindparam("b_app_id"), apps.c[counter.key] >= 1)
                .values({counter.key: apps.c[counter.key] - 1, "updated_at": apps.c.updated_at}),
                [{"b_app_id": app_id} for app_id, _ in gone],
            )
            if model is Star:
                self._withdraw_daily_stars(gone)
        return taken

    def _withdraw_daily_stars(self, stars: Sequence[Row[str, datetime]]) -> None:
        """A star counts on the day it was given (``app_daily_stats.stars``)."""
        per_day = Counter((app_id, at.astimezone(UTC).date()) for app_id, at in stars)
        daily = table_of(AppDailyStats)
        self.session.execute(
            update(daily)
            .where(
                daily.c.app_id == bindparam("b_app_id"),
                daily.c.day == bindparam("b_day"),
                daily.c.stars >= bindparam("b_n"),
            )
            .values(stars=daily.c.stars - bindparam("b_n")),
            [{"b_app_id": a, "b_day": d, "b_n": n} for (a, d), n in per_day.items()],
        )

    def app_ids_of(self, user_id: str) -> list[str]:
        """Every app the account owns, deleted or not."""
        return list(self.session.scalars(select(App.id).where(App.user_id == user_id)))

    def delete_user(self, user_id: str) -> bool:
        """Delete the row; the database cascades to its sessions, keys, identities and
        secrets (the callers take care of everything that feeds a maintained count)."""
        return bool(
            affected_rows(
                self.session.execute(
                    delete(User)
                    .where(User.id == user_id)
                    .execution_options(synchronize_session=False)
                )
            )
        )

    # -- export -------------------------------------------------------------------------

    def _rows(
        self, table: FromClause, condition: ColumnElement[bool], *order: Any
    ) -> list[dict[str, Any]]:
        query = select(*_exportable(table)).where(condition).order_by(*order)
        return [dict(row._mapping) for row in self.session.execute(query)]

    def export_user(self, user_id: str) -> dict[str, Any]:
        rows = self._rows(User.__table__, User.id == user_id)
        return rows[0] if rows else {}

    def export_identities(self, user_id: str) -> list[dict[str, Any]]:
        table = UserIdentity.__table__
        return self._rows(table, UserIdentity.user_id == user_id, UserIdentity.created_at)

    def export_sessions(self, user_id: str) -> list[dict[str, Any]]:
        table = UserSession.__table__
        return self._rows(table, UserSession.user_id == user_id, UserSession.created_at)

    def export_api_keys(self, user_id: str) -> list[dict[str, Any]]:
        return self._rows(ApiKey.__table__, ApiKey.user_id == user_id, ApiKey.created_at)

    def export_apps(self, user_id: str) -> list[dict[str, Any]]:
        return self._rows(App.__table__, App.user_id == user_id, App.created_at, App.id)

    def export_stars(self, user_id: str) -> list[dict[str, Any]]:
        return self._rows(Star.__table__, Star.user_id == user_id, Star.created_at)

    def export_favorites(self, user_id: str) -> list[dict[str, Any]]:
        return self._rows(Favorite.__table__, Favorite.user_id == user_id, Favorite.created_at)

    def export_secrets(self, user_id: str) -> list[dict[str, Any]]:
        """Secret metadata only: the ciphertext column is never selected."""
        table = UserSecret.__table__
        return self._rows(table, UserSecret.user_id == user_id, UserSecret.created_at)
