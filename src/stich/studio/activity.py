"""Platform activity per UTC day, and today's sign-in trouble, for the Studio dashboard.

The per-day numbers are sums of what the rest of Stich already keeps, never a second
count that could disagree: views and stars are the ``app_daily_stats`` rollups the API's
per-app analytics read (summed over apps), sign-ups and new apps are the rows' creation
days, and "published" is the gallery's own predicate (``FEED_PREDICATE``: public, ready
or deployed, not archived, not deleted) by day of creation, read through the gallery's
partial index. Failed sign-ins are the ``auth.login_failed`` audit entries the identity service
writes; locks are the lock columns it sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyStats
from stich.analytics.sql import utc_day
from stich.apps.models import FEED_PREDICATE, App
from stich.audit.models import AuditLog
from stich.auth.models import LoginThrottle
from stich.users.models import User

LOCKED_SHOWN = 10


class DashboardPeriod(StrEnum):
    """The dashboard's chart spans (``?period=``)."""

    MONTH = "30"
    QUARTER = "90"

    @property
    def days(self) -> int:
        return int(self.value)


SERIES_LABELS = {
    "signups": "Sign-ups",
    "apps_created": "Apps created",
    "apps_published": "Apps published",
    "views": "Views",
    "stars": "Stars",
}


@dataclass(frozen=True)
class DailyActivity:
    """One value per day from ``start`` to ``end`` (inclusive, UTC) for every series."""

    start: date
    end: date
    days: list[date]
    series: dict[str, list[int]]  # keyed as SERIES_LABELS

    def total(self, name: str) -> int:
        return sum(self.series[name])

    def followed_by(self, later: DailyActivity) -> DailyActivity:
        """These days, then ``later``'s (which must start the day after this ends)."""
        if later.start != self.end + timedelta(days=1):
            raise ValueError(f"{later.start} does not follow {self.end}")
        series = {name: values + later.series[name] for name, values in self.series.items()}
        return DailyActivity(self.start, later.end, self.days + later.days, series)

    def last(self, count: int) -> DailyActivity:
        """The last ``count`` days."""
        days = self.days[-count:]
        series = {name: values[-count:] for name, values in self.series.items()}
        return DailyActivity(days[0], self.end, days, series)


@dataclass(frozen=True)
class LockedAccount:
    user_id: str
    display_name: str
    email: str
    locked_until: datetime | None


@dataclass(frozen=True)
class SignInTrouble:
    """Since midnight UTC: failed and blocked sign-ins; locks in force now."""

    failed_today: int
    blocked_today: int
    locked_accounts: int
    locked_shown: list[LockedAccount]
    locked_unknown_emails: int


class ActivityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def signups_by_day(self, start: date, end: date) -> dict[date, int]:
        return self._by_day(User.created_at, start, end)

    def apps_created_by_day(self, start: date, end: date) -> dict[date, int]:
        return self._by_day(App.created_at, start, end)

    def apps_published_by_day(self, start: date, end: date) -> dict[date, int]:
        # The feed's exact WHERE text, so the partial index ix_apps_feed_recent applies;
        # SQLite would rather walk ix_apps_deleted_at (every live app), so it is told.
        return self._by_day(
            App.created_at,
            start,
            end,
            text(FEED_PREDICATE),
            hint="INDEXED BY ix_apps_feed_recent",
        )

    def views_and_stars_by_day(self, start: date, end: date) -> dict[date, tuple[int, int]]:
        rows = self.session.execute(
            select(
                AppDailyStats.day,
                func.sum(AppDailyStats.views),
                func.sum(AppDailyStats.stars),
            )
            .where(AppDailyStats.day >= start, AppDailyStats.day <= end)
            .group_by(AppDailyStats.day)
        )
        return {_as_date(day): (int(views or 0), int(stars or 0)) for day, views, stars in rows}

    def audit_count(self, action: str, since: datetime) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.created_at >= since, AuditLog.action == action)
            )
            or 0
        )

    def locked_accounts(self, now: datetime, limit: int) -> tuple[int, list[LockedAccount]]:
        """How many accounts are locked now, and the ``limit`` locked longest (one scan:
        no index serves a lock, and locks are few)."""
        total = func.count().over().label("total")
        rows = self.session.execute(
            select(User.id, User.display_name, User.email, User.locked_until, total)
            .where(User.locked_until > now, User.deleted_at.is_(None))
            .order_by(User.locked_until.desc(), User.id)
            .limit(limit)
        ).all()
        count = int(rows[0].total) if rows else 0
        return count, [LockedAccount(r[0], r[1], r[2], r[3]) for r in rows]

    def locked_unknown_emails(self, now: datetime) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(LoginThrottle)
                .where(LoginThrottle.locked_until > now)
            )
            or 0
        )

    def _by_day(
        self, created_at: Any, start: date, end: date, *where: Any, hint: str | None = None
    ) -> dict[date, int]:
        since = datetime.combine(start, time.min, UTC)
        until = datetime.combine(end + timedelta(days=1), time.min, UTC)
        day = utc_day(created_at).label("day")
        stmt = (
            select(day, func.count())
            .where(created_at >= since, created_at < until, *where)
            .group_by(day)
        )
        if hint is not None:
            stmt = stmt.with_hint(created_at.class_, hint, "sqlite")
        return {_as_date(d): int(n) for d, n in self.session.execute(stmt)}


class ActivityService:
    def __init__(self, session: Session) -> None:
        self.repo = ActivityRepository(session)

    def daily(self, start: date, end: date) -> DailyActivity:
        """Every series over the UTC days ``start``..``end``, days without rows as zeros."""
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        signups = self.repo.signups_by_day(start, end)
        created = self.repo.apps_created_by_day(start, end)
        published = self.repo.apps_published_by_day(start, end)
        rollups = self.repo.views_and_stars_by_day(start, end)
        series = {
            "signups": _fill(days, signups),
            "apps_created": _fill(days, created),
            "apps_published": _fill(days, published),
            "views": [rollups.get(day, (0, 0))[0] for day in days],
            "stars": [rollups.get(day, (0, 0))[1] for day in days],
        }
        return DailyActivity(start=start, end=end, days=days, series=series)

    def sign_in_trouble(self, now: datetime) -> SignInTrouble:
        midnight = datetime.combine(now.astimezone(UTC).date(), time.min, UTC)
        count, shown = self.repo.locked_accounts(now, LOCKED_SHOWN)
        return SignInTrouble(
            failed_today=self.repo.audit_count("auth.login_failed", midnight),
            blocked_today=self.repo.audit_count("auth.login_blocked", midnight),
            locked_accounts=count,
            locked_shown=shown,
            locked_unknown_emails=self.repo.locked_unknown_emails(now),
        )


def _fill(days: Sequence[date], counts: dict[date, int]) -> list[int]:
    return [counts.get(day, 0) for day in days]


def _as_date(value: Any) -> date:
    # SQLite's date() answers ISO text; PostgreSQL a date.
    return value if isinstance(value, date) else date.fromisoformat(str(value))
