"""The statements of a feed page, one per *shape*, built and compiled once per process.

The statements of a page depend on its shape (sort, which filters, a cursor or not, a
viewer or not, the dialect), never on the values: those are bound parameters. Each shape
is built and compiled once per process (``stich.db.compiled``), so a page costs its SQL,
not the building of it. The live windowed fallback (no fresh snapshot) is built per call
(``FeedQuery``): it is rare and already costs tens of milliseconds of SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Date,
    Integer,
    Interval,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
)

from stich.apps.models import FEED_PREDICATE, App
from stich.db.base import UTCDateTime
from stich.db.compiled import CompiledSelect
from stich.gallery import search
from stich.gallery.models import (
    Favorite,
    FeedCount,
    FeedDemotion,
    FeedRanking,
    FeedRankingSnapshot,
    Star,
)
from stich.gallery.rows import APP_COLUMNS, Column, Criterion, descending_after, gallery_select
from stich.gallery.sorts import COUNTER_SORTS, DEMOTABLE, FeedSort
from stich.users.models import User


@dataclass(frozen=True)
class Shape:
    framework: bool
    search: bool
    after: bool  # a cursor: only rows after its values
    viewer: bool
    dialect: str
    walk: bool = False  # a search dense enough to walk the sort's index
    # A first page of a windowed sort: the walked generation is the current snapshot's
    # if it is fresh, looked up inside the page statement (one round trip less).
    fresh_snapshot: bool = False


def shape_filters(shape: Shape) -> list[Criterion]:
    filters: list[Criterion] = [text(FEED_PREDICATE)]
    if shape.framework:
        filters.append(App.framework == bindparam("framework", type_=String))
    if shape.search:
        filters.append(
            search.match_clause(shape.dialect, framework=shape.framework, walk=shape.walk)
        )
    return filters


def pinned_walk(stmt: Select[Any], shape: Shape, sort_index: str) -> Select[Any]:
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


def _limit(name: str = "limit") -> BindParameter[int]:
    """A LIMIT written into the SQL (see stich.db.compiled): PostgreSQL then keeps one
    generic plan per prepared page statement instead of planning it on every call."""
    return bindparam(name, literal_execute=True)


def _leading_key(column: Any, shape: Shape) -> Any:
    """The leading sort key. A sparse search on PostgreSQL orders by ``column + 0``: no
    btree provides that order, so the planner starts from the GIN index and sorts the few
    matches (it cannot tell a rare word from a common one, and would walk the btree)."""
    if shape.search and not shape.walk and shape.dialect != "sqlite":
        zero = "interval '0'" if isinstance(column.type, UTCDateTime) else "0"
        return column + literal_column(zero, type_=Interval if zero != "0" else Integer)
    return column


def _select(shape: Shape, *extra: Any) -> Select[Any]:
    """Item columns, viewer flags, ``extra``; and, unless searching, the feed's total as
    the last column (one statement, one round trip less; a search counts first)."""
    viewer = bindparam("viewer_id", type_=String) if shape.viewer else None
    if shape.search:
        return gallery_select(viewer, *extra)
    return gallery_select(viewer, *extra, _FEED_TOTAL)


def not_demoted_since(since: Any) -> ColumnElement[bool]:
    """Apps whose sort values have not gone down since ``since`` (a value or a bound
    parameter): a later page of a live walk lists no app it may have listed already."""
    demoted = exists().where(FeedDemotion.app_id == App.id, FeedDemotion.demoted_at >= since)
    return ~demoted


def _after(columns: list[Any]) -> ColumnElement[bool]:
    """``descending_after`` with the cursor's values as parameters ``after_0``, ..."""
    values = [bindparam(f"after_{i}", type_=column.type) for i, column in enumerate(columns)]
    return descending_after(columns, values)


def _authors_after_the_page(
    shape: Shape, page: Select[*tuple[Any, ...]], order: list[str]
) -> Select[Any]:
    """``page`` (app columns, ``user_id`` and extras, filtered, ordered and limited) with
    the authors and viewer flags joined to its rows only, in :func:`gallery_select`'s
    column order. For a sparse search, which reads and sorts all its matches: joining
    ``users`` before the sort would look up an author for every match."""
    rows = page.subquery("page")
    columns: list[Any] = [rows.c[column.key] for column in APP_COLUMNS]
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
    known = {column.key for column in APP_COLUMNS} | {"user_id"}
    columns += [column for column in rows.c if column.key not in known]
    return (
        select(*columns)
        .select_from(rows.outerjoin(User, User.id == rows.c.user_id))
        .order_by(*(rows.c[name].desc() for name in order))
    )


@cache
def counter_select(sort: FeedSort, shape: Shape) -> CompiledSelect:
    """The page query of ``recent``, ``updated`` and all-time ``popular`` / ``viewed``."""
    field, _, index = COUNTER_SORTS[sort]
    sort_column: Column = getattr(App, field)
    if shape.search and not shape.walk:
        stmt = select(*APP_COLUMNS, App.user_id).where(*shape_filters(shape))
    else:
        stmt = pinned_walk(_select(shape), shape, index).where(*shape_filters(shape))
    if shape.after:
        stmt = stmt.where(_after([sort_column, App.id]))
        if sort in DEMOTABLE:
            stmt = stmt.where(not_demoted_since(bindparam("since", type_=UTCDateTime())))
    stmt = stmt.order_by(_leading_key(sort_column, shape).desc(), App.id.desc())
    stmt = stmt.limit(_limit())
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


def _generation(shape: Shape) -> Any:
    return _FRESH_GENERATION if shape.fresh_snapshot else bindparam("generation", type_=Integer)


def _walked_generation(shape: Shape) -> list[Any]:
    """The extra column saying which generation a fresh-snapshot page walked."""
    return [_FRESH_GENERATION.label("walked_generation")] if shape.fresh_snapshot else []


def _in_snapshot(shape: Shape) -> list[ColumnElement[bool]]:
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
def snapshot_select(shape: Shape) -> CompiledSelect:
    """The scored apps of a snapshot, walked down ``ix_feed_rankings_[fw_]walk``; apps
    that have since left the feed (or do not match the filters) are skipped. (A sparse
    search reads its matches instead: ``sparse_snapshot_search_select``.)"""
    ranked = FeedRanking
    walk = "ix_feed_rankings_fw_walk" if shape.framework else "ix_feed_rankings_walk"
    stmt = (
        _select(shape, ranked.score.label("score"), *_walked_generation(shape))
        .join(ranked, ranked.app_id == App.id)
        .where(*_in_snapshot(shape), *shape_filters(shape))
        .with_hint(ranked, f"INDEXED BY {walk}", "sqlite")
    )
    order: list[Column] = [ranked.score, ranked.created_at, ranked.app_id]
    if shape.after:
        stmt = stmt.where(_after(order))
    return CompiledSelect(stmt.order_by(*(column.desc() for column in order)).limit(_limit()))


@cache
def sparse_snapshot_search_select(shape: Shape) -> CompiledSelect:
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
        *APP_COLUMNS, App.user_id, score.label("score"), *_walked_generation(shape)
    ).where(*shape_filters(shape))
    order: list[Any] = [score, App.created_at, App.id]
    if shape.after:
        stmt = stmt.where(_after(order))
    stmt = stmt.order_by(*(column.desc() for column in order)).limit(_limit())
    return CompiledSelect(_authors_after_the_page(shape, stmt, ["score", "created_at", "id"]))


@cache
def snapshot_tail_select(shape: Shape) -> CompiledSelect:
    """The apps a snapshot does not rank (score 0; with a framework filter: not under
    that framework), newest first."""
    ranked = exists().where(*_in_snapshot(shape), FeedRanking.app_id == App.id)
    stmt = pinned_walk(_select(shape), shape, "recent").where(*shape_filters(shape), ~ranked)
    if shape.after:
        stmt = stmt.where(_after([App.created_at, App.id]))
    stmt = stmt.order_by(_leading_key(App.created_at, shape).desc(), App.id.desc())
    return CompiledSelect(stmt.limit(_limit()))


_FEED_TOTAL = (
    select(FeedCount.app_count)
    .where(FeedCount.scope == bindparam("scope", type_=String))
    .scalar_subquery()
    .label("feed_total")
)
SNAPSHOT_STATE = CompiledSelect(
    select(
        FeedRankingSnapshot.generation,
        FeedRankingSnapshot.previous_generation,
        FeedRankingSnapshot.reference_day,
        FeedRankingSnapshot.computed_at,
    ).where(FeedRankingSnapshot.ranking == bindparam("ranking", type_=String))
)
FEED_COUNT = CompiledSelect(select(_FEED_TOTAL))


# SQLite: a search's exact match count (the index holds the feed's apps only) and the size
# of the feed it searches, which together choose the page's plan (walks_index).
SQLITE_SEARCH_COUNTS = CompiledSelect(
    select(
        search.sqlite_match_count().columns(literal_column("matches", Integer)).scalar_subquery(),
        select(FeedCount.app_count)
        .where(FeedCount.scope == bindparam("scope", type_=String))
        .scalar_subquery(),
    )
)


@cache
def search_count_select(shape: Shape) -> CompiledSelect:
    """Matches of a search, counted up to one past the cap."""
    matching = select(literal(1)).select_from(App).where(*shape_filters(shape))
    capped = matching.limit(_limit("count_limit")).subquery()
    return CompiledSelect(select(func.count()).select_from(capped))
