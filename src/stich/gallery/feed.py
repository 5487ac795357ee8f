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
cursor, so a walk that crosses midnight keeps its window. Counts that grow move apps up,
into pages already seen; a live walk's later pages skip apps whose values went down
since it began (``cursors``, ``feed_demotions``), so no walk lists an app twice.

A search counts its matches first, and the count picks the page's plan: a dense search
walks the sort's index testing each app, a sparse one reads its few matches and sorts
them (:func:`walks_index`). Every statement shape is built and compiled once per process
(``stich.db.compiled``); see docs/gallery.md, "Speed".

This module plans and runs a page (:class:`FeedQuery`); the request and sorts are in
``sorts``, the row in ``rows``, the compiled statements in ``statements``, the live
windowed ranking in ``live`` and the cursor codec in ``cursors``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stich.db.base import utcnow
from stich.db.compiled import CompiledSelect
from stich.gallery import cursors, live, search
from stich.gallery.rows import ITEM_WIDTH, GalleryRow, to_row
from stich.gallery.sorts import (
    COUNTER_SORTS,
    DEFAULT_LIMIT,
    DEFAULT_RANKING_MAX_AGE,
    FIELD_INDEX,
    MAX_LIMIT,
    PERIOD_DAYS,
    SEARCH_COUNT_CAP,
    STAR_WEIGHT,
    TRENDING_HORIZON_DAYS,
    TRENDING_SCALE,
    FeedPage,
    FeedPeriod,
    FeedRequest,
    FeedSort,
    UnboundedPage,
    period_start,
    ranking_name,
    score_contribution,
)
from stich.gallery.statements import (
    FEED_COUNT,
    SNAPSHOT_STATE,
    SQLITE_SEARCH_COUNTS,
    Shape,
    counter_select,
    search_count_select,
    snapshot_select,
    snapshot_tail_select,
    sparse_snapshot_search_select,
    walks_index,
)

# The feed's public names, importable from here as before the split.
__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RANKING_MAX_AGE",
    "MAX_LIMIT",
    "PERIOD_DAYS",
    "SEARCH_COUNT_CAP",
    "STAR_WEIGHT",
    "TRENDING_HORIZON_DAYS",
    "TRENDING_SCALE",
    "FeedPage",
    "FeedPeriod",
    "FeedQuery",
    "FeedRequest",
    "FeedSort",
    "GalleryRow",
    "UnboundedPage",
    "period_start",
    "ranking_name",
    "score_contribution",
    "walks_index",
]


class FeedQuery:
    """Builds and runs the statements of one feed page (see the module doc).

    ``bounded_only``: run only plans of bounded cost (index walks, snapshot reads, the
    maintained total) and raise :class:`UnboundedPage` instead of anything else, so the
    caller may run such a page where a long statement would hold others up
    (``stich.api.reads``) and hand the rest elsewhere.
    """

    def __init__(
        self,
        session: Session,
        request: FeedRequest,
        viewer_id: str | None,
        *,
        ranking_max_age: timedelta = DEFAULT_RANKING_MAX_AGE,
        bounded_only: bool = False,
    ) -> None:
        self.session = session
        self.request = request
        self.viewer_id = viewer_id
        self.bounded_only = bounded_only
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
        self._score_at = ITEM_WIDTH + (2 if viewer_id is not None else 0)

    def _shape(self, *, after: bool, fresh_snapshot: bool = False) -> Shape:
        return Shape(
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

    # -- pages -------------------------------------------------------------------------

    def _unbounded(self, plan: str) -> None:
        if self.bounded_only:
            raise UnboundedPage(plan)

    def page(self, today: date, now: datetime | None = None) -> FeedPage:
        now = now or utcnow()
        searching = bool(self.request.search_terms)
        if searching:
            self._unbounded("a search")
        if searching:
            total, exact = self.total()  # first: it chooses the page's plan
        rows, next_cursor = (
            self._scored_page(today, now) if self.request.scored else self._counter_page(now)
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

    def counter_statement(
        self, now: datetime | None = None
    ) -> tuple[CompiledSelect, dict[str, Any], datetime]:
        """The page query of ``recent``, ``updated`` and all-time ``popular`` / ``viewed``,
        its values (limit + 1 rows down the sort's index: the extra one says whether there
        is a next page) and the walk's since (see ``cursors``)."""
        request = self.request
        values = {**self.params, "limit": request.limit + 1}
        since = cursors.walk_since(now or utcnow())
        if request.cursor is not None:
            cursor = cursors.decode_counter(request)
            values.update({f"after_{i}": value for i, value in enumerate(cursor.after)})
            if cursor.since is not None:
                since = values["since"] = cursor.since
        shape = self._shape(after=request.cursor is not None)
        return counter_select(request.sort, shape), values, since

    def _counter_page(self, now: datetime) -> tuple[list[GalleryRow], str | None]:
        request = self.request
        field = COUNTER_SORTS[request.sort][0]
        statement, values, since = self.counter_statement(now)
        scored = request.sort in (FeedSort.POPULAR, FeedSort.VIEWED)
        position = FIELD_INDEX[field]
        rows = [
            self._to_row(r, r[position] if scored else None)
            for r in self._note_total(statement.rows(self.session, values))
        ]
        if len(rows) <= request.limit:
            return rows, None
        rows = rows[: request.limit]
        last = rows[-1]
        cursor = cursors.CounterCursor(getattr(last, field), last.id, since)
        return rows, cursors.encode_counter(request, cursor)

    def _scored_page(self, today: date, now: datetime) -> tuple[list[GalleryRow], str | None]:
        """Apps with a score in the window first (from the rollups, or from a snapshot of
        them: see ``stich.gallery.rankings``), then the rest."""
        request = self.request
        reference, after_score, continuing = today, None, None
        since: datetime | None = None  # a later page's: skip apps demoted since (cursors)
        if request.cursor is not None:
            walked = cursors.decode_scored(request, today)
            reference, after_score, continuing = walked.reference, walked.after, walked.generation
            since = walked.since
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
                rows = self._active((start, reference), after_score, wanted, generation, since)
        if len(rows) < wanted and not (generation is not None and sparse_search):
            tail_after = after_score[1:] if after_score and after_score[0] == 0 else None
            window, more = (start, reference), wanted - len(rows)
            rows += self._inactive(window, tail_after, more, generation, since, rows)
        if len(rows) <= request.limit:
            return rows, None
        rows = rows[: request.limit]
        last = rows[-1]
        cursor = cursors.encode_scored(
            request,
            cursors.ScoredCursor(
                reference,
                last.score or 0,
                last.created_at,
                last.id,
                generation or 0,
                since or cursors.walk_since(now, self.ranking_max_age if generation else None),
            ),
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
        statement = sparse_snapshot_search_select(shape) if sparse_search else None
        statement = statement or snapshot_select(shape)
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
        return self._walk_snapshot(sparse_snapshot_search_select, generation, after, limit)

    def _walk_snapshot(
        self,
        statement_for: Callable[[Shape], CompiledSelect],
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
        found = SNAPSHOT_STATE.rows(self.session, {"ranking": name})
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

    def _active(
        self,
        window: tuple[date, date],
        after_score: tuple[int, datetime, str] | None,
        limit: int,
        generation: int | None,
        since: datetime | None,
    ) -> list[GalleryRow]:
        if generation is not None:
            return self._walk_snapshot(snapshot_select, generation, after_score, limit)
        self._unbounded("a live ranking")
        stmt = live.active_select(
            self.request, self.dialect, self.viewer_id, window, after_score, limit, since
        )
        return [self._to_row(r, int(r[self._score_at])) for r in self.session.execute(stmt)]

    def _inactive(
        self,
        window: tuple[date, date],
        after: tuple[datetime, str] | None,
        limit: int,
        generation: int | None,
        since: datetime | None,
        listed: list[GalleryRow],
    ) -> list[GalleryRow]:
        if generation is not None:
            return self._walk_snapshot(snapshot_tail_select, generation, after, limit, scored=False)
        self._unbounded("a live ranking")
        shape = self._shape(after=False)
        listed_ids = [row.id for row in listed]
        stmt = live.inactive_select(
            self.request, shape, self.viewer_id, window, after, limit, since, listed_ids
        )
        return [self._to_row(r, 0) for r in self.session.execute(stmt)]

    # -- total -------------------------------------------------------------------------

    def total(self) -> tuple[int, bool]:
        """Exact from the maintained counts. A search: on SQLite the exact count of its
        matches, on PostgreSQL its matches counted up to a cap; either also decides
        whether its pages walk the sort's index."""
        if not self.request.search_terms:
            found = FEED_COUNT.rows(self.session, self.params)
            return max(found[0][0] or 0, 0), True
        if self.dialect == "sqlite":
            counts = SQLITE_SEARCH_COUNTS.rows(self.session, self.params)
            matches, feed_size = int(counts[0][0]), int(counts[0][1] or 0)
            self.walk = walks_index(matches, feed_size, self.request.limit + 1)
            return matches, True
        statement = search_count_select(self._shape(after=False))
        count = int(self._rows(statement, count_limit=SEARCH_COUNT_CAP + 1)[0][0])
        # More matches than the cap: dense enough that walking the sort's index finds a
        # page sooner than reading every match (PostgreSQL's planner cannot tell: it
        # estimates any word's frequency from a sample).
        self.walk = count > SEARCH_COUNT_CAP
        return min(count, SEARCH_COUNT_CAP), count <= SEARCH_COUNT_CAP
