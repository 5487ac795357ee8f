"""Which days' view counts the raw view events can still prove.

Raw view events (``app_views``) are purged after ``STICH_VIEW_RETENTION_DAYS``, whole UTC
days at a time, once their views are rolled up (:mod:`stich.maintenance.jobs`). From then
on a day's rollups are its only history. So a recount treats days in two ways:

- from ``exact_from`` on, every raw view of the day is still there: the rollups must equal
  the recount, in both directions;
- before it, raw views may be gone: a rollup is never lowered, only raised to what the
  remaining rows count. Every view row that exists is counted, and no history is lost.

``exact_from`` is how far the purge has gone (``view_purge_marks``, set by the purge in
the transaction that rolls the days up, before it deletes them): with no mark, nothing was
ever purged and every day is exact, however old.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import BigInteger, BindParameter, Date, TextClause, bindparam, func, select, text
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyStats, AppView, ViewPurgeMark
from stich.db.base import UTCDateTime

NO_END = date(9999, 12, 31)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def first_retained_day(now: datetime, view_retention_days: int) -> date:
    """The first UTC day the view purge keeps whole: every earlier day's raw views go."""
    return (now - timedelta(days=view_retention_days)).astimezone(UTC).date()


@dataclass(frozen=True)
class ViewHistory:
    exact_from: date
    # Only the days from ``since`` and before ``before`` (a chunk of a repair, or the
    # roll-up before a purge); by default every day.
    before: date = NO_END
    since: date = date.min

    @classmethod
    def everything_retained(cls) -> ViewHistory:
        """Every raw view was kept: every day is recounted exactly."""
        return cls(date.min)

    def params(self) -> list[BindParameter[object]]:
        start = day_start(self.since) if self.since > date.min else _FIRST
        end = day_start(self.before) if self.before < NO_END else _LAST
        return [
            bindparam("exact_from", self.exact_from, type_=Date()),
            bindparam("days_from", self.since, type_=Date()),
            bindparam("days_before", self.before, type_=Date()),
            bindparam("views_from", start, type_=UTCDateTime()),
            bindparam("views_before", end, type_=UTCDateTime()),
            # A view's window starts on the view's UTC day (windows divide a day).
            bindparam("windows_from", int(start.timestamp()), type_=BigInteger()),
            bindparam("windows_before", int(end.timestamp()), type_=BigInteger()),
        ]

    def bind(self, sql: str) -> TextClause:
        """``sql`` with the parameters of these days that it uses."""
        return text(sql).bindparams(*(p for p in self.params() if f":{p.key}" in sql))

    def chunks(self, first: date, last: date, days: int) -> list[ViewHistory]:
        """These days in chunks of ``days`` cut between ``first`` and ``last``; the first
        and last chunks are open-ended, so together they cover exactly these days."""
        cuts = [first + timedelta(days=n) for n in range(days, (last - first).days + 1, days)]
        bounds = [self.since, *(cut for cut in cuts if self.since < cut < self.before)]
        ends = [*bounds[1:], self.before]
        return [replace(self, since=lo, before=hi) for lo, hi in zip(bounds, ends, strict=True)]


_FIRST = datetime(1, 1, 2, tzinfo=UTC)  # (a day in: its epoch seconds stay representable)
_LAST = datetime.max.replace(tzinfo=UTC)


def view_days(session: Session) -> tuple[date, date] | None:
    """The first and last day of the raw views and the daily rollups (both indexed by
    day), where a repair cuts its chunks."""
    windows = session.execute(
        select(func.min(AppView.window_start), func.max(AppView.window_start))
    ).one()
    days = session.execute(select(func.min(AppDailyStats.day), func.max(AppDailyStats.day))).one()
    found = [datetime.fromtimestamp(int(w), UTC).date() for w in windows if w is not None]
    found += [d if isinstance(d, date) else date.fromisoformat(d) for d in days if d is not None]
    return (min(found), max(found)) if found else None


def views_before(session: Session, day: date) -> int:
    """How many raw views are older than ``day`` (by their window, on the same day)."""
    start = int(day_start(day).timestamp()) if day > date.min else None
    if start is None:
        return 0
    count = select(func.count()).select_from(AppView).where(AppView.window_start < start)
    return int(session.scalar(count) or 0)


def oldest_view_day(session: Session) -> date | None:
    """The UTC day of the oldest raw view (windows divide a day, so a view's window starts
    on the view's day: the smallest window start is on the oldest view's day)."""
    oldest = session.scalar(select(func.min(AppView.window_start)))
    return None if oldest is None else datetime.fromtimestamp(int(oldest), UTC).date()


def view_history(
    session: Session, view_retention_days: int | None, *, now: datetime | None = None
) -> ViewHistory:
    """The history of this database: exact from the purge mark on, everywhere when no view
    was ever purged. ``view_retention_days=None`` means views are never purged (every day
    exact, whatever a mark says); ``now`` is kept for callers that pin the clock."""
    del now  # the boundary is what was purged, not what the clock says could be
    if view_retention_days is None:
        return ViewHistory.everything_retained()
    mark = purge_mark(session)
    return ViewHistory.everything_retained() if mark is None else ViewHistory(mark)


def purge_mark(session: Session) -> date | None:
    """The first day whose raw views were never purged, or None if none ever were."""
    return session.scalar(select(ViewPurgeMark.purged_before))


def mark_purged(session: Session, before: date) -> None:
    """Record that raw views of days before ``before`` may now be purged (the mark only
    moves forward). Call it in the transaction that rolls those days up."""
    current = session.scalar(select(ViewPurgeMark).with_for_update())
    if current is None:
        session.add(ViewPurgeMark(id=1, purged_before=before))
    elif current.purged_before < before:
        current.purged_before = before
    session.flush()
