"""What a feed page is asked for and what it answers: sorts, periods, the request, the
page, and the scores of the windowed sorts (see ``stich.gallery.feed``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import BigInteger, ColumnElement, Integer, cast, literal, or_

from stich.analytics.models import AppDailyStats
from stich.analytics.sql import days_before
from stich.gallery import search
from stich.gallery.rows import APP_COLUMNS, Column, GalleryRow

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# Above this many matches a search's total is reported as this many, marked inexact.
SEARCH_COUNT_CAP = 1000

# How old a ranking snapshot a first page may use (STICH_FEED_RANKING_MAX_AGE_SECONDS).
DEFAULT_RANKING_MAX_AGE = timedelta(minutes=15)

STAR_WEIGHT = 10
TRENDING_SCALE = 100_000
# The oldest age (days) whose trending weight floor(SCALE / (age + 2)^2) is still > 0.
TRENDING_HORIZON_DAYS = 315


class FeedSort(StrEnum):
    RECENT = "recent"
    UPDATED = "updated"
    POPULAR = "popular"
    VIEWED = "viewed"
    TRENDING = "trending"


class FeedPeriod(StrEnum):
    TODAY = "today"
    WEEK = "week"
    MONTH = "month"
    ALL = "all"


PERIOD_DAYS = {FeedPeriod.TODAY: 1, FeedPeriod.WEEK: 7, FeedPeriod.MONTH: 30}


@dataclass(frozen=True)
class FeedRequest:
    sort: FeedSort = FeedSort.RECENT
    period: FeedPeriod = FeedPeriod.ALL
    framework: str | None = None
    search_terms: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @property
    def cursor_scope(self) -> str:
        """What a cursor is valid for: this sort, period and filter set, nothing else."""
        digest = search.terms_digest(list(self.search_terms)) if self.search_terms else ""
        return f"feed:{self.sort}:{self.period}:{self.framework or ''}:{digest}"

    @property
    def scored(self) -> bool:
        """Whether the order comes from the daily rollups (a windowed score)."""
        return self.sort is FeedSort.TRENDING or (
            self.sort in (FeedSort.POPULAR, FeedSort.VIEWED) and self.period is not FeedPeriod.ALL
        )


@dataclass(frozen=True)
class FeedPage:
    items: list[GalleryRow]
    next_cursor: str | None
    has_more: bool
    total: int
    total_exact: bool


def ranking_name(sort: FeedSort, period: FeedPeriod) -> str:
    """The name of a windowed ranking's snapshot (``feed_rankings.ranking``)."""
    return f"{sort.value}:{period.value}"


def score_contribution(sort: FeedSort, reference: date) -> Column:
    if sort is FeedSort.POPULAR:
        return AppDailyStats.stars
    if sort is FeedSort.VIEWED:
        return AppDailyStats.views
    age = days_before(reference, AppDailyStats.day)
    weight = literal(TRENDING_SCALE, Integer) // ((age + 2) * (age + 2))
    return cast(STAR_WEIGHT * AppDailyStats.stars + AppDailyStats.views, BigInteger) * weight


def has_activity(sort: FeedSort) -> ColumnElement[bool]:
    """True for a rollup row that adds to the score (every contribution is >= 0)."""
    if sort is FeedSort.POPULAR:
        return AppDailyStats.stars > 0
    if sort is FeedSort.VIEWED:
        return AppDailyStats.views > 0
    return or_(AppDailyStats.stars > 0, AppDailyStats.views > 0)


def period_start(sort: FeedSort, period: FeedPeriod, reference: date) -> date:
    """The first day of the window a windowed sort counts, ending on ``reference``."""
    days = PERIOD_DAYS.get(period, TRENDING_HORIZON_DAYS)
    if sort is FeedSort.TRENDING:
        days = min(days, TRENDING_HORIZON_DAYS)
    return reference - timedelta(days=days - 1)


# sort -> (the GalleryRow field it orders by, that value's type in a cursor, the
# suffix of its ix_apps_feed_* / ix_apps_feed_fw_* index)
COUNTER_SORTS: dict[FeedSort, tuple[str, type, str]] = {
    FeedSort.RECENT: ("created_at", datetime, "recent"),
    FeedSort.UPDATED: ("updated_at", datetime, "updated"),
    FeedSort.POPULAR: ("star_count", int, "popular"),
    FeedSort.VIEWED: ("view_count", int, "viewed"),
}
FIELD_INDEX = {column.key: index for index, column in enumerate(APP_COLUMNS)}
# Counter sorts whose value can go down (a star taken back, a recount): see cursors.
DEMOTABLE = frozenset({FeedSort.POPULAR, FeedSort.VIEWED})


class UnboundedPage(Exception):
    """Raised by a feed query told ``bounded_only`` when the page needs a plan whose cost
    grows with the data: a search, or a windowed ranking computed live (no fresh snapshot)."""
