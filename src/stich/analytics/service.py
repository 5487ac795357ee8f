"""Views, per-app analytics and the owner's dashboard.

Views count only for apps in the public feed, once per viewer per de-duplication window
(``view_dedup_window_seconds``), and never for bots. Each recorded view adds to the app's
``view_count``, to its day's ``views`` (and ``unique_viewers`` the first time that viewer
is seen that day) and to the day's referrer and device breakdowns — all in the caller's
transaction. :meth:`AnalyticsService.ingest` counts a whole batch that way, in one
transaction, with a bounded number of statements; requests only :meth:`~AnalyticsService.prepare`
a view and hand it to the view queue (:mod:`stich.analytics.queue`), which ingests in batches.

Days are UTC days, for every user (the analytics response says so).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from sqlalchemy.orm import Session

from stich.analytics.ingest import ViewIngestRepository
from stich.analytics.models import BreakdownDimension
from stich.analytics.repository import (
    AnalyticsRepository,
    BreakdownDelta,
    DailyDelta,
    DayRow,
    NewView,
    OwnerTotals,
    WindowKey,
)
from stich.analytics.viewer import (
    Viewer,
    device_type,
    referrer_origin,
    viewer_key,
    window_start,
)
from stich.apps.visibility import can_manage
from stich.auth.models import DeviceType
from stich.auth.principal import Principal
from stich.crypto.tokens import KeyedHasher
from stich.db.base import utcnow
from stich.errors import Forbidden, NotFound, Unauthorized

Clock = Callable[[], datetime]
DEFAULT_WINDOW_SECONDS = 1800
TOP_REFERRERS = 10
# Streaks are looked for this far back; a longer one shows as this many days.
STREAK_LOOKBACK_DAYS = 366


class AnalyticsPeriod(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


PERIOD_DAYS = {AnalyticsPeriod.WEEK: 7, AnalyticsPeriod.MONTH: 30, AnalyticsPeriod.QUARTER: 90}


@dataclass(frozen=True)
class ViewEvent:
    """One view to ingest: of which app, by whom, when, coming from where."""

    app_id: str
    viewer: Viewer
    at: datetime
    referrer: str | None = None


@dataclass(frozen=True)
class ViewResult:
    recorded: bool
    view_count: int


@dataclass(frozen=True)
class Totals:
    views: int
    unique_viewers: int
    stars: int


@dataclass(frozen=True)
class AppAnalytics:
    app_id: str
    period: AnalyticsPeriod
    start: date
    end: date
    days: list[DayRow]
    totals: Totals
    all_time_views: int
    all_time_stars: int
    top_referrers: list[tuple[str | None, int]]
    devices: list[tuple[DeviceType, int]]


@dataclass(frozen=True)
class MyStats:
    apps: int
    public_apps: int
    stars_received: int
    views_received: int
    streak_days: int
    last_active_day: date | None


def app_not_found() -> NotFound:
    return NotFound("no such app", code="app_not_found")


class AnalyticsService:
    def __init__(
        self,
        session: Session,
        hasher: KeyedHasher,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Clock = utcnow,
    ) -> None:
        self.repo = AnalyticsRepository(session)
        self.hasher = hasher
        self.window_seconds = window_seconds
        self.clock = clock

    # -- views ---------------------------------------------------------------------------

    def record_view(
        self,
        principal: Principal | None,
        app_id: str,
        viewer: Viewer,
        *,
        referrer: str | None = None,
        at: datetime | None = None,
    ) -> ViewResult:
        """A view of an app the principal can see (else 404); counted when it is public."""
        view_count = self.repo.visible_view_count(app_id, principal)
        if view_count is None:
            raise app_not_found()
        event = ViewEvent(app_id=app_id, viewer=viewer, at=at or self.clock(), referrer=referrer)
        recorded = self.record_views([event]) == 1
        return ViewResult(recorded=recorded, view_count=view_count + int(recorded))

    def record_views(self, events: Sequence[ViewEvent]) -> int:
        """Ingest views in the caller's transaction; how many counted (new in their window,
        of a public app, not by a bot)."""
        return self.ingest([view for event in events if (view := self.prepare(event))])

    def prepare(self, event: ViewEvent) -> NewView | None:
        """What is kept of a view, or None for a bot (see :func:`prepare_view`)."""
        return prepare_view(event, self.hasher, self.window_seconds)

    def can_see(self, principal: Principal | None, app_id: str) -> bool:
        return self.repo.visible_view_count(app_id, principal) is not None

    def ingest(self, views: Sequence[NewView]) -> int:
        """Count prepared views in the caller's transaction, with a bounded number of
        statements (:mod:`stich.analytics.ingest`); how many were new.

        Idempotent per (app, viewer, window): views delivered again are not counted again.
        """
        unique: dict[WindowKey, NewView] = {}
        for view in views:
            unique.setdefault((view.app_id, view.viewer_key, view.window_start), view)
        repo = ViewIngestRepository(self.repo.session)
        inserted = repo.insert_views(list(unique.values()))
        if not inserted:
            return 0
        counted = [unique[key] for key in sorted(inserted)]
        # A viewer is unique for the day when its (day, app, viewer) is new: the database's
        # key decides, so two batches racing with the same viewer count it once.
        first_of_day = repo.insert_daily_viewers(
            {(_day_of(v.window_start), v.app_id, v.viewer_key) for v in counted}
        )
        repo.add_app_views(Counter(view.app_id for view in counted))
        repo.add_daily(_daily_deltas(counted, first_of_day))
        repo.add_breakdowns(_breakdown_deltas(counted))
        return len(counted)

    # -- per-app analytics ---------------------------------------------------------------

    def app_analytics(
        self,
        principal: Principal,
        app_id: str,
        period: AnalyticsPeriod,
        *,
        today: date | None = None,
    ) -> AppAnalytics:
        """Day-by-day views, unique viewers and stars, top referrers and devices (UTC days).

        For the app's owner and admins; another principal that can see the app gets 403,
        one that cannot gets 404.
        """
        app = self.repo.visible_app(app_id, principal)
        if app is None:
            raise app_not_found()
        if not can_manage(app, principal):
            raise Forbidden("only the app's owner and admins can see its analytics")
        end = today or self.clock().astimezone(UTC).date()
        start = end - timedelta(days=PERIOD_DAYS[period] - 1)
        days = _fill_days(self.repo.daily_series(app.id, start, end), start, end)
        referrers = self.repo.breakdown(
            app.id, start, end, BreakdownDimension.REFERRER, TOP_REFERRERS
        )
        devices = self.repo.breakdown(
            app.id, start, end, BreakdownDimension.DEVICE, len(DeviceType)
        )
        return AppAnalytics(
            app_id=app.id,
            period=period,
            start=start,
            end=end,
            days=days,
            totals=Totals(
                views=sum(d.views for d in days),
                unique_viewers=sum(d.unique_viewers for d in days),
                stars=sum(d.stars for d in days),
            ),
            all_time_views=app.view_count,
            all_time_stars=app.star_count,
            top_referrers=[(origin or None, n) for origin, n in referrers],
            devices=[(DeviceType(value), n) for value, n in devices],
        )

    # -- the owner's dashboard -----------------------------------------------------------

    def my_stats(self, principal: Principal, *, now: datetime | None = None) -> MyStats:
        if not principal.is_user or principal.user_id is None:
            raise Unauthorized("this needs a signed-in account", code="account_required")
        now = (now or self.clock()).astimezone(UTC)
        totals: OwnerTotals = self.repo.owner_totals(principal.user_id)
        since = now - timedelta(days=STREAK_LOOKBACK_DAYS + 1)
        active = self.repo.activity_days(principal.user_id, since)
        return MyStats(
            apps=totals.apps,
            public_apps=totals.public_apps,
            stars_received=totals.stars_received,
            views_received=totals.views_received,
            streak_days=activity_streak(active, now.date()),
            last_active_day=max(active) if active else None,
        )


def prepare_view(event: ViewEvent, hasher: KeyedHasher, window_seconds: int) -> NewView | None:
    """What is kept of a view (keyed hashes, origin, device), or None for a bot.

    The request does this, so a queued view carries no address or user agent.
    """
    device = device_type(event.viewer.user_agent)
    if device is DeviceType.BOT:
        return None
    if event.at.tzinfo is None:
        raise ValueError("a view's time must be timezone-aware (UTC)")
    at = event.at.astimezone(UTC)
    return NewView(
        app_id=event.app_id,
        viewer_key=viewer_key(hasher, event.viewer, app_id=event.app_id, day=at.date()),
        window_start=window_start(at, window_seconds),
        referrer_origin=referrer_origin(event.referrer),
        device_type=device,
        viewed_at=at,
    )


def activity_streak(active_days: set[date], today: date) -> int:
    """Consecutive active days ending today, or yesterday (today is not over yet)."""
    day = today if today in active_days else today - timedelta(days=1)
    streak = 0
    while day in active_days and streak < STREAK_LOOKBACK_DAYS:
        streak += 1
        day -= timedelta(days=1)
    return streak


@lru_cache(maxsize=1024)  # a batch has a handful of windows, looked up thousands of times
def _day_of(window: int) -> date:
    return datetime.fromtimestamp(window, UTC).date()


def _fill_days(rows: list[DayRow], start: date, end: date) -> list[DayRow]:
    """One row per day from start to end; days without a rollup are zeros."""
    by_day = {row.day: row for row in rows}
    span = (end - start).days + 1
    days = (start + timedelta(days=i) for i in range(span))
    return [by_day.get(day, DayRow(day, 0, 0, 0)) for day in days]


def _daily_deltas(views: list[NewView], first_of_day: list[tuple[str, date]]) -> list[DailyDelta]:
    """Views and new unique viewers per (app, day)."""
    counts = Counter((view.app_id, _day_of(view.window_start)) for view in views)
    uniques = Counter(first_of_day)
    return [DailyDelta(app, day, n, uniques[(app, day)]) for (app, day), n in counts.items()]


def _breakdown_deltas(views: list[NewView]) -> list[BreakdownDelta]:
    counts: Counter[tuple[str, date, BreakdownDimension, str]] = Counter()
    for view in views:
        day = _day_of(view.window_start)
        counts[(view.app_id, day, BreakdownDimension.REFERRER, view.referrer_origin or "")] += 1
        counts[(view.app_id, day, BreakdownDimension.DEVICE, view.device_type.value)] += 1
    return [BreakdownDelta(*key, views=n) for key, n in counts.items()]
