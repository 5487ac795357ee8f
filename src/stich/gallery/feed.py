"""The public feed: one Core ``SELECT`` of columns per page, keyset-paged, never a scan.

Every sort lists *every* app in the feed (public, not archived, not deleted, ready or
deployed), so a walk through all pages returns each exactly once and ``total`` is the
same for every sort. The WHERE clause is ``text(FEED_PREDICATE)`` verbatim so SQLite and
PostgreSQL match the partial ``ix_apps_feed_*`` indexes: a first page of ``recent``,
``updated``, and all-time ``popular`` / ``viewed`` is a walk down an index, no sort.

Sorts and their keys (descending; ties broken by the next key):

- ``recent``: ``(created_at, id)``; ``updated``: ``(updated_at, id)``.
- ``popular`` / ``viewed`` over ``all``: the app row's ``star_count`` / ``view_count``,
  then ``id``.
- ``popular`` / ``viewed`` over ``today`` / ``week`` / ``month``, and ``trending``: a
  *score* summed from ``app_daily_stats`` over the window, then ``created_at``, ``id``.
  Apps with activity in the window come first (from the rollups), then the rest of the
  feed, newest first (``ix_apps_feed_recent``) — score 0.

Trending score, with ``age`` = whole UTC days before the reference day (today = 0)::

    score = sum over days of (10 * stars + views) * floor(100000 / (age + 2) ** 2)

a gravity decay: today's activity weighs 25000, yesterday's 11111, a week ago 1234, a
month ago 97, and nothing after 314 days (so ``all`` means those 315 days). It is
integer arithmetic, identical on both backends.

A period's window is pinned by the first page: its reference day travels in the
cursor, so a walk that crosses midnight keeps its window, and counts that only grow
(new stars, views) move apps up, never back into pages already seen.

A search counts its matches first, and the count picks the page's plan: a dense search
walks the sort's index testing each app, a sparse one reads its few matches and sorts
them (:func:`walks_index`, ``_leading_key``). Every statement shape is built and compiled
once per process (``stich.db.compiled``); see docs/gallery.md, "Speed".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Interval,
    Select,
    SQLColumnExpression,
    String,
    TextClause,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import Subquery

from stich.analytics.models import AppDailyStats
from stich.analytics.sql import days_before
from stich.apps.models import FEED_PREDICATE, App
from stich.db.base import UTCDateTime, utcnow
from stich.db.compiled import CompiledSelect
from stich.db.pagination import decode_cursor, encode_cursor
from stich.errors import InvalidInput
from stich.gallery import search
from stich.gallery.models import Favorite, FeedCount, FeedRanking, FeedRankingSnapshot, Star
from stich.users.models import User

Column = SQLColumnExpression[Any]
Criterion = ColumnElement[bool] | TextClause

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


class GalleryRow(NamedTuple):
    """One app as the gallery shows it: public-safe columns, author, counts, viewer flags.

    A named tuple, not a dataclass: pages build thousands of these a second, and a tuple
    is built from a row by position at a fifth of a frozen dataclass's cost.
    """

    id: str
    title: str
    description: str | None
    icon: str | None
    framework: str | None
    screenshot_url: str | None
    deployment_url: str | None
    created_at: datetime
    updated_at: datetime
    star_count: int
    view_count: int
    fork_count: int
    favorite_count: int
    author_username: str | None
    author_display_name: str | None
    author_avatar_url: str | None
    starred: bool | None = None
    favorited: bool | None = None
    score: int | None = None


@dataclass(frozen=True)
class FeedPage:
    items: list[GalleryRow]
    next_cursor: str | None
    has_more: bool
    total: int
    total_exact: bool


_APP_COLUMNS = (
    App.id,
    App.title,
    App.description,
    App.icon,
    App.framework,
    App.screenshot_url,
    App.deployment_url,
    App.created_at,
    App.updated_at,
    App.star_count,
    App.view_count,
    App.fork_count,
    App.favorite_count,
)


def _authors() -> Subquery:
    # Only author_* names leave this subquery, so the unqualified column names of
    # FEED_PREDICATE (deleted_at, status, ...) still resolve to apps alone.
    return (
        select(
            User.id.label("author_id"),
            User.username.label("author_username"),
            User.display_name.label("author_display_name"),
            User.avatar_url.label("author_avatar_url"),
        )
        .select_from(User)
        .subquery("authors")
    )


def item_columns(authors: Subquery, viewer: str | BindParameter[str] | None) -> list[Any]:
    """The columns of a :class:`GalleryRow`, in its field order; with a viewer (an id, or
    a bound parameter for one), its star/favorite flags too."""
    columns: list[Any] = [
        *_APP_COLUMNS,
        authors.c.author_username,
        authors.c.author_display_name,
        authors.c.author_avatar_url,
    ]
    if viewer is not None:
        columns.append(
            exists()
            .where(Star.user_id == viewer, Star.app_id == App.id)
            .correlate_except(Star)  # "my stars" joins stars itself
            .label("starred")
        )
        columns.append(
            exists()
            .where(Favorite.user_id == viewer, Favorite.app_id == App.id)
            .correlate_except(Favorite)
            .label("favorited")
        )
    return columns


# Built once: constructing the subquery and its join is a third of a feed page's Python
# time, and both are immutable, so every statement can share them.
_AUTHORS = _authors()
_APPS_WITH_AUTHORS = App.__table__.outerjoin(_AUTHORS, _AUTHORS.c.author_id == App.user_id)
_ANONYMOUS_COLUMNS = item_columns(_AUTHORS, None)
_ITEM_WIDTH = len(_ANONYMOUS_COLUMNS)


def gallery_select(viewer: str | BindParameter[str] | None, *extra: Any) -> Select[Any]:
    """``SELECT`` item columns ``FROM apps LEFT JOIN authors``; callers add the rest.

    The row is ``GalleryRow``'s fields in order, then ``starred`` and ``favorited`` when
    there is a viewer, then ``extra``: see :func:`to_row`.
    """
    columns = _ANONYMOUS_COLUMNS if viewer is None else item_columns(_AUTHORS, viewer)
    return select(*columns, *extra).select_from(_APPS_WITH_AUTHORS)


def to_row(row: Sequence[Any], *, viewer: bool, score: int | None = None) -> GalleryRow:
    """A :class:`GalleryRow` from a row of :func:`gallery_select` (by position)."""
    if viewer:
        flags = [bool(row[_ITEM_WIDTH]), bool(row[_ITEM_WIDTH + 1])]
        return GalleryRow._make([*row[:_ITEM_WIDTH], *flags, score])
    return GalleryRow._make([*row[:_ITEM_WIDTH], None, None, score])


def descending_after(columns: list[Column], values: list[Any]) -> ColumnElement[bool]:
    """Rows after ``values`` in ``ORDER BY columns DESC``, with a redundant bound on the
    leading column so every planner starts its index range there (page 200 costs what
    page 1 does)."""
    clauses: list[ColumnElement[bool]] = []
    for i, column in enumerate(columns):
        equal_prefix = [columns[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal_prefix, column < values[i]))
    return and_(columns[0] <= values[0], or_(*clauses))


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


def _has_activity(sort: FeedSort) -> ColumnElement[bool]:
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
_COUNTER_SORTS: dict[FeedSort, tuple[str, type, str]] = {
    FeedSort.RECENT: ("created_at", datetime, "recent"),
    FeedSort.UPDATED: ("updated_at", datetime, "updated"),
    FeedSort.POPULAR: ("star_count", int, "popular"),
    FeedSort.VIEWED: ("view_count", int, "viewed"),
}
_FIELD_INDEX = {column.key: index for index, column in enumerate(_APP_COLUMNS)}


# -- statement shapes ------------------------------------------------------------------
#
# The statements of a page depend on its *shape* (sort, which filters, a cursor or not, a
# viewer or not, the dialect), never on the values: those are bound parameters. Each
# shape is built and compiled once per process (stich.db.compiled), so a page costs its
# SQL, not the building of it. The live windowed fallback (no fresh snapshot) is built
# per call: it is rare and already costs tens of milliseconds of SQL.


@dataclass(frozen=True)
class _Shape:
    framework: bool
    search: bool
    after: bool  # a cursor: only rows after its values
    viewer: bool
    dialect: str
    walk: bool = False  # a search dense enough to walk the sort's index
    # A first page of a windowed sort: the walked generation is the current snapshot's
    # if it is fresh, looked up inside the page statement (one round trip less).
    fresh_snapshot: bool = False


def _filters(shape: _Shape) -> list[Criterion]:
    filters: list[Criterion] = [text(FEED_PREDICATE)]
    if shape.framework:
        filters.append(App.framework == bindparam("framework", type_=String))
    if shape.search:
        filters.append(
            search.match_clause(shape.dialect, framework=shape.framework, walk=shape.walk)
        )
    return filters


def _walk(stmt: Select[Any], shape: _Shape, sort_index: str) -> Select[Any]:
    """Pin SQLite to the feed index of the sort (and framework).

    Without statistics SQLite's planner prefers ``ix_apps_deleted_at`` for the
    ``deleted_at IS NULL`` term and then sorts the whole feed; ``INDEXED BY`` makes the
    page a walk down the partial index, and fails loudly (rather than silently scanning)
    should the WHERE clause ever stop implying the index's predicate. A search walks the
    index too when its matches are dense enough (:func:`walks_index`); a sparse one is
    driven from the full-text index instead, reading and sorting its few matches.
    PostgreSQL's planner has statistics and needs no hint.
    """
    if shape.search and not shape.walk:
        return stmt
    scope = "fw_" if shape.framework else ""
    return stmt.with_hint(App, f"INDEXED BY ix_apps_feed_{scope}{sort_index}", "sqlite")


# Reading, sorting and dropping one full-text match costs about what stepping over two
# index entries does (measured on SQLite, medium dataset): see walks_index.
WALK_ADVANTAGE = 2


def walks_index(matches: int, feed_size: int, wanted: int) -> bool:
    """Whether a search page should walk the sort's index, testing each app against the
    matches, rather than read every match and sort them: the walk steps over about
    ``wanted * feed_size / matches`` entries, the other plan handles ``matches`` rows."""
    return matches > 0 and wanted * feed_size < WALK_ADVANTAGE * matches * matches


def _leading_key(column: Any, shape: _Shape) -> Any:
    """The leading sort key. A sparse search on PostgreSQL orders by ``column + 0``: no
    btree provides that order, so the planner starts from the GIN index and sorts the few
    matches (it cannot tell a rare word from a common one, and would walk the btree)."""
    if shape.search and not shape.walk and shape.dialect != "sqlite":
        zero = "interval '0'" if isinstance(column.type, UTCDateTime) else "0"
        return column + literal_column(zero, type_=Interval if zero != "0" else Integer)
    return column


def _select(shape: _Shape, *extra: Any) -> Select[Any]:
    """Item columns, viewer flags, ``extra``; and, unless searching, the feed's total as
    the last column (one statement, one round trip less; a search counts first)."""
    viewer = bindparam("viewer_id", type_=String) if shape.viewer else None
    if shape.search:
        return gallery_select(viewer, *extra)
    return gallery_select(viewer, *extra, _FEED_TOTAL)


def _after(columns: list[Any]) -> ColumnElement[bool]:
    """``descending_after`` with the cursor's values as parameters ``after_0``, ..."""
    values = [bindparam(f"after_{i}", type_=column.type) for i, column in enumerate(columns)]
    return descending_after(columns, values)


def _authors_after_the_page(
    shape: _Shape, page: Select[*tuple[Any, ...]], order: list[str]
) -> Select[Any]:
    """``page`` (app columns, ``user_id`` and extras, filtered, ordered and limited) with
    the authors and viewer flags joined to its rows only, in :func:`gallery_select`'s
    column order. For a sparse search, which reads and sorts all its matches: joining
    ``users`` before the sort would look up an author for every match."""
    rows = page.subquery("page")
    columns: list[Any] = [rows.c[column.key] for column in _APP_COLUMNS]
    columns += [
        User.username.label("author_username"),
        User.display_name.label("author_display_name"),
        User.avatar_url.label("author_avatar_url"),
    ]
    if shape.viewer:
        viewer = bindparam("viewer_id", type_=String)
        for model, label in ((Star, "starred"), (Favorite, "favorited")):
            mine = exists().where(model.user_id == viewer, model.app_id == rows.c.id)
            columns.append(mine.label(label))
    known = {column.key for column in _APP_COLUMNS} | {"user_id"}
    columns += [column for column in rows.c if column.key not in known]
    return (
        select(*columns)
        .select_from(rows.outerjoin(User, User.id == rows.c.user_id))
        .order_by(*(rows.c[name].desc() for name in order))
    )


@cache
def _counter_select(sort: FeedSort, shape: _Shape) -> CompiledSelect:
    """The page query of ``recent``, ``updated`` and all-time ``popular`` / ``viewed``."""
    field, _, index = _COUNTER_SORTS[sort]
    sort_column: Column = getattr(App, field)
    if shape.search and not shape.walk:
        stmt = select(*_APP_COLUMNS, App.user_id).where(*_filters(shape))
    else:
        stmt = _walk(_select(shape), shape, index).where(*_filters(shape))
    if shape.after:
        stmt = stmt.where(_after([sort_column, App.id]))
    stmt = stmt.order_by(_leading_key(sort_column, shape).desc(), App.id.desc())
    stmt = stmt.limit(bindparam("limit"))
    if shape.search and not shape.walk:
        stmt = _authors_after_the_page(shape, stmt, [field, "id"])
    return CompiledSelect(stmt)


# The current generation of ``:ranking`` if it was computed for ``:reference`` no earlier
# than ``:fresh_after``; else NULL (the page then finds nothing and asks again).
_FRESH_GENERATION = (
    select(FeedRankingSnapshot.generation)
    .where(
        FeedRankingSnapshot.ranking == bindparam("ranking", type_=String),
        FeedRankingSnapshot.reference_day == bindparam("reference", type_=Date),
        FeedRankingSnapshot.computed_at >= bindparam("fresh_after", type_=UTCDateTime()),
        FeedRankingSnapshot.generation > 0,
    )
    .scalar_subquery()
)


def _generation(shape: _Shape) -> Any:
    return _FRESH_GENERATION if shape.fresh_snapshot else bindparam("generation", type_=Integer)


def _walked_generation(shape: _Shape) -> list[Any]:
    """The extra column saying which generation a fresh-snapshot page walked."""
    return [_FRESH_GENERATION.label("walked_generation")] if shape.fresh_snapshot else []


def _in_snapshot(shape: _Shape) -> list[ColumnElement[bool]]:
    """Rows of the walked snapshot (``:ranking``, and ``:generation`` or the fresh one);
    with a framework filter, only the entries ranked under that framework
    (``ix_feed_rankings_fw_walk``)."""
    conditions = [
        FeedRanking.ranking == bindparam("ranking", type_=String),
        FeedRanking.generation == _generation(shape),
    ]
    if shape.framework:
        conditions.append(FeedRanking.framework == bindparam("framework", type_=String))
    return conditions


@cache
def _snapshot_select(shape: _Shape) -> CompiledSelect:
    """The scored apps of a snapshot, walked down ``ix_feed_rankings_[fw_]walk``; apps
    that have since left the feed (or do not match the filters) are skipped. (A sparse
    search reads its matches instead: ``_sparse_snapshot_search_select``.)"""
    ranked = FeedRanking
    walk = "ix_feed_rankings_fw_walk" if shape.framework else "ix_feed_rankings_walk"
    stmt = (
        _select(shape, ranked.score.label("score"), *_walked_generation(shape))
        .join(ranked, ranked.app_id == App.id)
        .where(*_in_snapshot(shape), *_filters(shape))
        .with_hint(ranked, f"INDEXED BY {walk}", "sqlite")
    )
    order: list[Column] = [ranked.score, ranked.created_at, ranked.app_id]
    if shape.after:
        stmt = stmt.where(_after(order))
    return CompiledSelect(
        stmt.order_by(*(column.desc() for column in order)).limit(bindparam("limit"))
    )


@cache
def _sparse_snapshot_search_select(shape: _Shape) -> CompiledSelect:
    """A sparse search's page over a snapshot, driven from the search's matches: each
    match's score looked up in the snapshot (0 when unranked; ranked scores are > 0, so
    this is the walk's order: ranked apps by score, then the rest newest first)."""
    ranked_score = (
        select(FeedRanking.score)
        .where(*_in_snapshot(shape), FeedRanking.app_id == App.id)
        .scalar_subquery()
    )
    score = func.coalesce(ranked_score, 0)
    stmt = select(
        *_APP_COLUMNS, App.user_id, score.label("score"), *_walked_generation(shape)
    ).where(*_filters(shape))
    order: list[Any] = [score, App.created_at, App.id]
    if shape.after:
        stmt = stmt.where(_after(order))
    stmt = stmt.order_by(*(column.desc() for column in order)).limit(bindparam("limit"))
    return CompiledSelect(_authors_after_the_page(shape, stmt, ["score", "created_at", "id"]))


@cache
def _snapshot_tail_select(shape: _Shape) -> CompiledSelect:
    """The apps a snapshot does not rank (score 0; with a framework filter: not under
    that framework), newest first."""
    ranked = exists().where(*_in_snapshot(shape), FeedRanking.app_id == App.id)
    stmt = _walk(_select(shape), shape, "recent").where(*_filters(shape), ~ranked)
    if shape.after:
        stmt = stmt.where(_after([App.created_at, App.id]))
    stmt = stmt.order_by(_leading_key(App.created_at, shape).desc(), App.id.desc())
    return CompiledSelect(stmt.limit(bindparam("limit")))


_FEED_TOTAL = (
    select(FeedCount.app_count)
    .where(FeedCount.scope == bindparam("scope", type_=String))
    .scalar_subquery()
    .label("feed_total")
)
_SNAPSHOT_STATE = CompiledSelect(
    select(
        FeedRankingSnapshot.generation,
        FeedRankingSnapshot.previous_generation,
        FeedRankingSnapshot.reference_day,
        FeedRankingSnapshot.computed_at,
    ).where(FeedRankingSnapshot.ranking == bindparam("ranking", type_=String))
)
_FEED_COUNT = CompiledSelect(select(_FEED_TOTAL))


# SQLite: a search's exact match count (the index holds the feed's apps only) and the size
# of the feed it searches, which together choose the page's plan (walks_index).
_SQLITE_SEARCH_COUNTS = CompiledSelect(
    select(
        search.sqlite_match_count().columns(literal_column("matches", Integer)).scalar_subquery(),
        select(FeedCount.app_count)
        .where(FeedCount.scope == bindparam("scope", type_=String))
        .scalar_subquery(),
    )
)


@cache
def _search_count_select(shape: _Shape) -> CompiledSelect:
    """Matches of a search, counted up to one past the cap."""
    matching = select(literal(1)).select_from(App).where(*_filters(shape))
    capped = matching.limit(bindparam("count_limit")).subquery()
    return CompiledSelect(select(func.count()).select_from(capped))


class FeedQuery:
    """Builds and runs the statements of one feed page (see the module doc)."""

    def __init__(
        self,
        session: Session,
        request: FeedRequest,
        viewer_id: str | None,
        *,
        ranking_max_age: timedelta = DEFAULT_RANKING_MAX_AGE,
    ) -> None:
        self.session = session
        self.request = request
        self.viewer_id = viewer_id
        self.dialect = session.get_bind().dialect.name
        self.ranking_max_age = ranking_max_age
        self.params: dict[str, Any] = {}
        if request.framework is not None:
            self.params["framework"] = request.framework
        if request.search_terms:
            self.params[search.PARAMETER] = search.match_value(
                list(request.search_terms), self.dialect, request.framework
            )
            if self.dialect != "sqlite" and request.framework is not None:
                self.params[search.FRAMEWORK_PARAMETER] = search.pg_framework_query(
                    request.framework
                )
        if viewer_id is not None:
            self.params["viewer_id"] = viewer_id
        framework = request.framework
        self.params["scope"] = "all" if framework is None else f"framework:{framework}"
        self.walk = False  # set by total(): a search dense enough to walk the index
        # The feed's total, when a page statement brought it along (see _select).
        self._feed_total: int | None = None
        # Where a row's score is, after the item columns and the viewer's flags.
        self._score_at = _ITEM_WIDTH + (2 if viewer_id is not None else 0)

    def _shape(self, *, after: bool, fresh_snapshot: bool = False) -> _Shape:
        return _Shape(
            framework=self.request.framework is not None,
            search=bool(self.request.search_terms),
            after=after,
            viewer=self.viewer_id is not None,
            dialect=self.dialect,
            walk=self.walk,
            fresh_snapshot=fresh_snapshot,
        )

    def _rows(
        self, statement: CompiledSelect, after: list[Any] | None = None, **params: Any
    ) -> list[Sequence[Any]]:
        values = {**self.params, **params}
        for i, value in enumerate(after or ()):
            values[f"after_{i}"] = value
        return self._note_total(statement.rows(self.session, values))

    def _note_total(self, rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
        """Keep the feed's total that a page statement brought along (see _select)."""
        if rows and not self.request.search_terms and self._feed_total is None:
            self._feed_total = rows[0][-1] or 0
        return rows

    def _to_row(self, row: Sequence[Any], score: int | None) -> GalleryRow:
        return to_row(row, viewer=self.viewer_id is not None, score=score)

    # -- filters (the live windowed fallback) ------------------------------------------

    def _filters(self) -> list[Criterion]:
        filters: list[Criterion] = [text(FEED_PREDICATE)]
        if self.request.framework is not None:
            filters.append(App.framework == self.request.framework)
        if self.request.search_terms:
            terms = list(self.request.search_terms)
            filters.append(search.matches(terms, self.dialect, self.request.framework))
        return filters

    # -- pages -------------------------------------------------------------------------

    def page(self, today: date, now: datetime | None = None) -> FeedPage:
        now = now or utcnow()
        searching = bool(self.request.search_terms)
        if searching:
            total, exact = self.total()  # first: it chooses the page's plan
        rows, next_cursor = (
            self._scored_page(today, now) if self.request.scored else self._counter_page()
        )
        if not searching:
            if self._feed_total is None:  # an empty page, or the live ranking
                total, exact = self.total()
            else:
                total, exact = max(self._feed_total, 0), True
        return FeedPage(
            items=rows,
            next_cursor=next_cursor,
            has_more=next_cursor is not None,
            total=total,
            total_exact=exact,
        )

    def counter_statement(self) -> tuple[CompiledSelect, dict[str, Any]]:
        """The page query of ``recent``, ``updated`` and all-time ``popular`` / ``viewed``
        and its values: limit + 1 rows down the sort's index (the extra one says whether
        there is a next page)."""
        request = self.request
        _, kind, _ = _COUNTER_SORTS[request.sort]
        values = {**self.params, "limit": request.limit + 1}
        if request.cursor is not None:
            after = decode_cursor(request.cursor, request.cursor_scope, (kind, str))
            values.update({f"after_{i}": value for i, value in enumerate(after)})
        shape = self._shape(after=request.cursor is not None)
        return _counter_select(request.sort, shape), values

    def _counter_page(self) -> tuple[list[GalleryRow], str | None]:
        request = self.request
        field = _COUNTER_SORTS[request.sort][0]
        statement, values = self.counter_statement()
        scored = request.sort in (FeedSort.POPULAR, FeedSort.VIEWED)
        position = _FIELD_INDEX[field]
        rows = [
            self._to_row(r, r[position] if scored else None)
            for r in self._note_total(statement.rows(self.session, values))
        ]
        if len(rows) <= request.limit:
            return rows, None
        rows = rows[: request.limit]
        last = rows[-1]
        return rows, encode_cursor(request.cursor_scope, [getattr(last, field), last.id])

    def _scored_page(self, today: date, now: datetime) -> tuple[list[GalleryRow], str | None]:
        """Apps with a score in the window first (from the rollups, or from a snapshot of
        them: see ``stich.gallery.rankings``), then the rest."""
        request = self.request
        reference, after_score, continuing = today, None, None
        if request.cursor is not None:
            reference, after_score, continuing = self._decode_scored_cursor(today)
        start = period_start(request.sort, request.period, reference)
        wanted = request.limit + 1
        sparse_search = bool(request.search_terms) and not self.walk
        first = self._from_fresh_snapshot(today, now, wanted) if request.cursor is None else None
        generation: int | None
        if first is not None:
            rows, generation = first
        else:
            rows, generation = [], self._snapshot_generation(reference, now, continuing)
            if generation is not None and sparse_search:
                rows = self._sparse_search_from_snapshot(generation, after_score, wanted)
            elif after_score is None or after_score[0] > 0:
                rows = self._active(reference, start, after_score, wanted, generation)
        if len(rows) < wanted and not (generation is not None and sparse_search):
            tail_after = after_score[1:] if after_score and after_score[0] == 0 else None
            rows += self._inactive(start, reference, tail_after, wanted - len(rows), generation)
        if len(rows) <= request.limit:
            return rows, None
        rows = rows[: request.limit]
        last = rows[-1]
        cursor = encode_cursor(
            request.cursor_scope,
            [reference.isoformat(), last.score, last.created_at, last.id, generation or 0],
        )
        return rows, cursor

    def _from_fresh_snapshot(
        self, today: date, now: datetime, limit: int
    ) -> tuple[list[GalleryRow], int] | None:
        """A first page straight from the current snapshot, its freshness checked inside
        the statement: the rows and the generation walked, or None when it found nothing
        (a missing or stale snapshot, or no ranked app matching; the caller then looks the
        snapshot up and carries on as for any page)."""
        shape = self._shape(after=False, fresh_snapshot=True)
        sparse_search = bool(self.request.search_terms) and not self.walk
        statement = _sparse_snapshot_search_select(shape) if sparse_search else None
        statement = statement or _snapshot_select(shape)
        found = self._rows(
            statement,
            ranking=ranking_name(self.request.sort, self.request.period),
            reference=today,
            fresh_after=now - self.ranking_max_age,
            limit=limit,
        )
        generation_at = self._score_at + 1
        if not found or found[0][generation_at] is None:
            return None
        rows = [self._to_row(r, int(r[self._score_at])) for r in found]
        return rows, int(found[0][generation_at])

    def _sparse_search_from_snapshot(
        self, generation: int, after: tuple[int, datetime, str] | None, limit: int
    ) -> list[GalleryRow]:
        """A sparse search over a snapshot: its few matches, each with its snapshot score
        (0 if unranked), sorted; the same order as the walk of the ranked apps followed by
        the rest, in one statement that never walks the ranking."""
        return self._walk_snapshot(_sparse_snapshot_search_select, generation, after, limit)

    def _walk_snapshot(
        self,
        statement_for: Callable[[_Shape], CompiledSelect],
        generation: int,
        after: tuple[Any, ...] | None,
        limit: int,
        *,
        scored: bool = True,
    ) -> list[GalleryRow]:
        """Rows of one snapshot generation from the statement ``statement_for`` builds,
        after the cursor's values ``after``; ``scored``: rows carry their score (else 0)."""
        rows = self._rows(
            statement_for(self._shape(after=after is not None)),
            list(after) if after is not None else None,
            ranking=ranking_name(self.request.sort, self.request.period),
            generation=generation,
            limit=limit,
        )
        return [self._to_row(r, int(r[self._score_at]) if scored else 0) for r in rows]

    def _snapshot_generation(
        self, reference: date, now: datetime, continuing: int | None
    ) -> int | None:
        """The snapshot generation this page walks, or None to compute the ranking live.

        A first page takes the current snapshot if it was computed for ``reference`` and
        is at most ``ranking_max_age`` old. A later page keeps the generation its cursor
        names while it still exists (current or previous), so a walk never changes
        snapshot midway; a walk that began live, or whose snapshot is gone, goes on live.
        """
        if continuing == 0:
            return None
        name = ranking_name(self.request.sort, self.request.period)
        found = _SNAPSHOT_STATE.rows(self.session, {"ranking": name})
        if not found or found[0][0] == 0:
            return None
        generation, previous, reference_day, computed_at = found[0]
        if continuing is not None:
            current = continuing == generation and reference_day == reference
            kept = continuing == previous
            return continuing if current or kept else None
        if reference_day == reference and computed_at >= now - self.ranking_max_age:
            return int(generation)
        return None

    def _decode_scored_cursor(
        self, today: date
    ) -> tuple[date, tuple[int, datetime, str], int | None]:
        reference_text, score, created_at, app_id, generation = decode_cursor(
            self.request.cursor or "",
            self.request.cursor_scope,
            (str, int, datetime, str, int),
        )
        try:
            reference = date.fromisoformat(reference_text)
        except ValueError:
            reference = None
        if reference is None or reference > today or score < 0 or generation < 0:
            raise InvalidInput(
                "cursor is not valid for this listing; use next_cursor from the previous "
                "page with the same sort and filters",
                code="invalid_cursor",
            )
        return reference, (score, created_at, app_id), generation

    def _active(
        self,
        reference: date,
        start: date,
        after_score: tuple[int, datetime, str] | None,
        limit: int,
        generation: int | None,
    ) -> list[GalleryRow]:
        if generation is not None:
            return self._walk_snapshot(_snapshot_select, generation, after_score, limit)
        contribution = score_contribution(self.request.sort, reference)
        scores = (
            select(
                AppDailyStats.app_id.label("scored_app_id"),
                cast(func.sum(contribution), BigInteger).label("score"),
            )
            .where(AppDailyStats.day >= start, AppDailyStats.day <= reference)
            .group_by(AppDailyStats.app_id)
            .having(func.sum(contribution) > 0)
            .subquery("scores")
        )
        stmt = (
            gallery_select(self.viewer_id, scores.c.score)
            .join(scores, scores.c.scored_app_id == App.id)
            .where(*self._filters())
        )
        order: list[Column] = [scores.c.score, App.created_at, App.id]
        if after_score is not None:
            stmt = stmt.where(descending_after(order, list(after_score)))
        stmt = stmt.order_by(*(column.desc() for column in order)).limit(limit)
        return [self._to_row(r, int(r[self._score_at])) for r in self.session.execute(stmt)]

    def _inactive(
        self,
        start: date,
        reference: date,
        after: tuple[datetime, str] | None,
        limit: int,
        generation: int | None = None,
    ) -> list[GalleryRow]:
        if generation is not None:
            return self._walk_snapshot(
                _snapshot_tail_select, generation, after, limit, scored=False
            )
        active = exists().where(
            AppDailyStats.app_id == App.id,
            AppDailyStats.day >= start,
            AppDailyStats.day <= reference,
            _has_activity(self.request.sort),
        )
        stmt = _walk(gallery_select(self.viewer_id), self._shape(after=False), "recent")
        stmt = stmt.where(*self._filters(), ~active)
        if after is not None:
            stmt = stmt.where(descending_after([App.created_at, App.id], list(after)))
        stmt = stmt.order_by(App.created_at.desc(), App.id.desc()).limit(limit)
        return [self._to_row(r, 0) for r in self.session.execute(stmt)]

    # -- total -------------------------------------------------------------------------

    def total(self) -> tuple[int, bool]:
        """Exact from the maintained counts. A search: on SQLite the exact count of its
        matches, on PostgreSQL its matches counted up to a cap; either also decides
        whether its pages walk the sort's index."""
        if not self.request.search_terms:
            found = _FEED_COUNT.rows(self.session, self.params)
            return max(found[0][0] or 0, 0), True
        if self.dialect == "sqlite":
            counts = _SQLITE_SEARCH_COUNTS.rows(self.session, self.params)
            matches, feed_size = int(counts[0][0]), int(counts[0][1] or 0)
            self.walk = walks_index(matches, feed_size, self.request.limit + 1)
            return matches, True
        statement = _search_count_select(self._shape(after=False))
        count = int(self._rows(statement, count_limit=SEARCH_COUNT_CAP + 1)[0][0])
        # More matches than the cap: dense enough that walking the sort's index finds a
        # page sooner than reading every match (PostgreSQL's planner cannot tell: it
        # estimates any word's frequency from a sample).
        self.walk = count > SEARCH_COUNT_CAP
        return min(count, SEARCH_COUNT_CAP), count <= SEARCH_COUNT_CAP
