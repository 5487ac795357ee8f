"""The set-based SQL that recounts maintained state and compares it with what is stored.

Each maintained table has one *comparison* query: the stored rows and a recount of the
event rows, ``UNION ALL``-ed and grouped by the table's key, so one pass over each side
yields every key with its stored values (``s_*``) and recounted values (``a_*``). Finding
drift filters that query; repairing it is ``INSERT ... SELECT <wanted> FROM <comparison>
WHERE <drift> ON CONFLICT DO UPDATE`` — one statement per table, whatever the number of
rows, and it touches only the rows that drifted.

View-based values obey the view history (:class:`stich.analytics.rebuild.ViewHistory`):
on days from ``:exact_from`` on every raw view is retained, so a rollup must equal the
recount; on earlier days raw views may have been purged and the rollup is history, so it
is only ever *raised* to what the remaining rows count (``GREATEST``), never lowered.
"""

# Statement text is assembled from this module's own constants; values are always bound.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass

from stich.analytics.models import BreakdownDimension

REFERRER = BreakdownDimension.REFERRER.value
DEVICE = BreakdownDimension.DEVICE.value


@dataclass(frozen=True)
class Dialect:
    name: str

    def day(self, column: str) -> str:
        """The UTC day of a ``UTCDateTime`` column (as :class:`stich.analytics.sql.utc_day`)."""
        if self.name == "sqlite":
            return f"date({column})"
        return f"CAST(({column}) AT TIME ZONE 'UTC' AS DATE)"

    def epoch_day(self, column: str) -> str:
        """The UTC day of epoch seconds (a view's day is its window's: windows divide a day)."""
        if self.name == "sqlite":
            return f"date({column}, 'unixepoch')"
        return f"CAST(to_timestamp({column}) AT TIME ZONE 'UTC' AS DATE)"

    def greatest(self, a: str, b: str) -> str:
        return f"max({a}, {b})" if self.name == "sqlite" else f"GREATEST({a}, {b})"

    def lock(self, table: str) -> str | None:
        """PostgreSQL: hold off concurrent writers of ``table`` until the repair commits, so
        no increment committed after the recount's snapshot is overwritten. (SQLite's
        writers already take turns.)"""
        if self.name == "sqlite":
            return None
        return f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"


def _kept(d: Dialect, field: str) -> str:
    """The wanted value of a view-based field: the recount on exact days, else the larger."""
    larger = d.greatest(f"s_{field}", f"a_{field}")
    return f"CASE WHEN day >= :exact_from THEN a_{field} ELSE {larger} END"


def _drifted(field: str) -> str:
    return f"((day >= :exact_from AND s_{field} <> a_{field}) OR s_{field} < a_{field})"


# Raw views of apps that exist (app_views has no foreign key), on the days a caller asks
# for: by window start, which leads the views' one index and is on the view's UTC day.
_VIEWS = (
    "app_views WHERE window_start >= :windows_from AND window_start < :windows_before "
    "AND app_id IN (SELECT id FROM apps)"
)
# Stored rows and stars on the days asked for.
_DAYS = "day >= :days_from AND day < :days_before"
_STARS = "created_at >= :views_from AND created_at < :views_before"


@dataclass(frozen=True)
class DailyViewersSql:
    """``app_daily_viewers``: the distinct (day, app, viewer) of the raw views. On days
    before ``:exact_from`` rows are only ever added (raw views may be gone)."""

    d: Dialect

    def comparison(self) -> str:
        return (
            "SELECT day, app_id, viewer_key, max(s) AS stored, max(a) AS actual FROM ("
            "SELECT day, app_id, viewer_key, 1 AS s, 0 AS a FROM app_daily_viewers "
            f"WHERE {_DAYS} "
            f"UNION ALL SELECT {self.d.epoch_day('window_start')}, app_id, viewer_key, 0, 1 "
            f"FROM {_VIEWS}) AS c GROUP BY day, app_id, viewer_key "
            "HAVING max(s) <> max(a) AND (max(a) = 1 OR day >= :exact_from)"
        )

    def find(self, *, ordered: bool) -> str:
        order = " ORDER BY app_id, day, viewer_key" if ordered else ""
        return (
            f"SELECT app_id, day, viewer_key, stored, actual FROM ({self.comparison()}) AS w{order}"
        )

    # The repair compares once, into a temporary table, then adds and deletes from it.
    DRIFT = "daily_viewer_drift"

    def repair(self) -> list[str]:
        return [
            f"CREATE TEMPORARY TABLE {self.DRIFT} "
            "(day DATE, app_id VARCHAR(36), viewer_key VARCHAR(64), missing INTEGER)",
            f"INSERT INTO {self.DRIFT} (day, app_id, viewer_key, missing) "
            f"SELECT day, app_id, viewer_key, actual FROM ({self.comparison()}) AS w",
            # SQLite's GROUP BY yields them in key order: they go into the index in order.
            "INSERT INTO app_daily_viewers (day, app_id, viewer_key) "
            f"SELECT day, app_id, viewer_key FROM {self.DRIFT} WHERE missing = 1 "
            "ON CONFLICT DO NOTHING",
            "DELETE FROM app_daily_viewers WHERE (day, app_id, viewer_key) IN ("
            f"SELECT day, app_id, viewer_key FROM {self.DRIFT} WHERE missing = 0)",
            f"DROP TABLE {self.DRIFT}",
        ]


@dataclass(frozen=True)
class DailyStatsSql:
    """``app_daily_stats``: views per app and UTC day from ``app_views``, unique viewers
    from ``app_daily_viewers`` (rebuilt first), stars from ``stars``."""

    d: Dialect

    FIELDS = ("views", "unique_viewers", "stars")

    def comparison(self) -> str:
        d = self.d
        views = (
            f"SELECT app_id, {d.epoch_day('window_start')} AS day, 0 AS s_views, "
            "0 AS s_unique_viewers, 0 AS s_stars, count(*) AS a_views, 0 AS a_unique_viewers, "
            f"0 AS a_stars FROM {_VIEWS} GROUP BY 1, 2 "
            "UNION ALL SELECT app_id, day, 0, 0, 0, 0, count(*), 0 FROM app_daily_viewers "
            f"WHERE {_DAYS} AND app_id IN (SELECT id FROM apps) GROUP BY 1, 2"
        )
        parts = [
            views,
            f"SELECT app_id, {d.day('created_at')}, 0, 0, 0, 0, 0, count(*) FROM stars "
            f"WHERE {_STARS} GROUP BY 1, 2",
            "SELECT app_id, day, views, unique_viewers, stars, 0, 0, 0 FROM app_daily_stats "
            f"WHERE {_DAYS}",
        ]
        sums = ", ".join(f"sum(s_{f}) AS s_{f}, sum(a_{f}) AS a_{f}" for f in self.FIELDS)
        return (
            f"SELECT app_id, day, {sums} FROM ({' UNION ALL '.join(parts)}) AS c "
            "GROUP BY app_id, day"
        )

    @property
    def drift(self) -> str:
        return " OR ".join([_drifted("views"), _drifted("unique_viewers"), "s_stars <> a_stars"])

    def find(self, *, ordered: bool) -> str:
        columns = ", ".join(f"s_{f}, a_{f}" for f in self.FIELDS)
        order = " ORDER BY app_id, day" if ordered else ""
        return (
            f"SELECT app_id, day, {columns}, {_kept(self.d, 'views')} AS w_views, "
            f"{_kept(self.d, 'unique_viewers')} AS w_unique_viewers "
            f"FROM ({self.comparison()}) AS w WHERE {self.drift}{order}"
        )

    def repair(self) -> str:
        return (
            "INSERT INTO app_daily_stats (app_id, day, views, unique_viewers, stars) "
            f"SELECT app_id, day, {_kept(self.d, 'views')}, {_kept(self.d, 'unique_viewers')}, "
            f"a_stars FROM ({self.comparison()}) AS w WHERE {self.drift} "
            "ORDER BY app_id, day "
            "ON CONFLICT (app_id, day) DO UPDATE SET views = excluded.views, "
            "unique_viewers = excluded.unique_viewers, stars = excluded.stars"
        )

    def _raw(self) -> str:
        """Views and unique viewers per (app, day) of the raw rows, alone."""
        view_day = self.d.epoch_day("window_start")
        return (
            f"SELECT app_id, {view_day} AS day, count(*) AS views, "
            f"count(DISTINCT viewer_key) AS unique_viewers FROM {_VIEWS} GROUP BY 1, 2"
        )

    def raise_views(self) -> str:
        """Roll up raw views not yet counted (before a purge): raise views and unique
        viewers to the raw rows' count, never lower them. Reads only the raw rows of the
        days asked for (not the whole history of rollups); a new row gets its stars."""
        d = self.d
        stars = (
            f"SELECT app_id, {d.day('created_at')} AS day, count(*) AS n FROM stars "
            f"WHERE {_STARS} GROUP BY 1, 2"
        )
        return (
            "INSERT INTO app_daily_stats (app_id, day, views, unique_viewers, stars) "
            "SELECT r.app_id, r.day, r.views, r.unique_viewers, coalesce(s.n, 0) "
            f"FROM ({self._raw()}) AS r LEFT JOIN ({stars}) AS s "
            "ON s.app_id = r.app_id AND s.day = r.day WHERE true ORDER BY r.app_id, r.day "
            "ON CONFLICT (app_id, day) DO UPDATE SET "
            f"views = {d.greatest('app_daily_stats.views', 'excluded.views')}, "
            "unique_viewers = "
            f"{d.greatest('app_daily_stats.unique_viewers', 'excluded.unique_viewers')} "
            "WHERE app_daily_stats.views < excluded.views "
            "OR app_daily_stats.unique_viewers < excluded.unique_viewers"
        )

    def uncounted_views(self) -> str:
        """How many raw views the rollups of the days asked for do not count yet."""
        return (
            "SELECT coalesce(sum(r.views - coalesce(d.views, 0)), 0) "
            f"FROM ({self._raw()}) AS r LEFT JOIN app_daily_stats AS d "
            "ON d.app_id = r.app_id AND d.day = r.day WHERE coalesce(d.views, 0) < r.views"
        )


@dataclass(frozen=True)
class BreakdownSql:
    """``app_daily_breakdowns``: views per app, UTC day and referrer origin / device type.

    Statements start with ``WITH v AS (one pass over the raw views), w AS (comparison)``.
    """

    d: Dialect

    def _with(self, *, stored: bool = True) -> str:
        per_view = (
            f"SELECT app_id, {self.d.epoch_day('window_start')} AS day, "
            "coalesce(referrer_origin, '') AS referrer, device_type AS device, count(*) AS n "
            f"FROM {_VIEWS} GROUP BY 1, 2, 3, 4"
        )
        parts = [  # the one pass, regrouped per dimension
            f"SELECT app_id, day, '{REFERRER}' AS dimension, referrer AS value, 0 AS s_views, "
            "sum(n) AS a_views FROM v GROUP BY 1, 2, 3, 4",
            f"SELECT app_id, day, '{DEVICE}', device, 0, sum(n) FROM v GROUP BY 1, 2, 3, 4",
        ]
        if stored:
            parts.append(
                "SELECT app_id, day, dimension, value, views, 0 FROM app_daily_breakdowns "
                f"WHERE {_DAYS}"
            )
        return (
            f"WITH v AS ({per_view}), w AS ("
            "SELECT app_id, day, dimension, value, sum(s_views) AS s_views, "
            f"sum(a_views) AS a_views FROM ({' UNION ALL '.join(parts)}) AS c "
            "GROUP BY app_id, day, dimension, value) "
        )

    def find(self, *, ordered: bool) -> str:
        order = " ORDER BY app_id, day, dimension, value" if ordered else ""
        return (
            f"{self._with()}SELECT app_id, day, dimension, value, s_views, a_views, "
            f"{_kept(self.d, 'views')} AS w_views FROM w WHERE {_drifted('views')}{order}"
        )

    # INSERT before WITH: Python's sqlite3 reports rowcount only for statements that
    # start with INSERT, UPDATE or DELETE.
    _INSERT = "INSERT INTO app_daily_breakdowns (app_id, day, dimension, value, views) "

    def repair(self) -> str:
        return (
            f"{self._INSERT}{self._with()}"
            f"SELECT app_id, day, dimension, value, {_kept(self.d, 'views')} FROM w "
            f"WHERE {_drifted('views')} ORDER BY app_id, day, dimension, value "
            "ON CONFLICT (app_id, day, dimension, value) DO UPDATE SET views = excluded.views"
        )

    def raise_views(self) -> str:
        """Roll up raw views not yet counted (before a purge): only ever raise; reads only
        the raw rows of the days asked for."""
        larger = self.d.greatest("app_daily_breakdowns.views", "excluded.views")
        return (
            f"{self._INSERT}{self._with(stored=False)}"
            "SELECT app_id, day, dimension, value, a_views FROM w WHERE true "
            "ORDER BY app_id, day, dimension, value "
            f"ON CONFLICT (app_id, day, dimension, value) DO UPDATE SET views = {larger} "
            "WHERE app_daily_breakdowns.views < excluded.views"
        )


@dataclass(frozen=True)
class CounterSql:
    """One counter column of ``apps`` against ``recount``: ``SELECT app_id, n ... GROUP BY``."""

    column: str
    recount: str

    @property
    def comparison(self) -> str:
        return (
            f"SELECT apps.id AS id, apps.{self.column} AS stored, coalesce(c.n, 0) AS actual "
            f"FROM apps LEFT JOIN ({self.recount}) AS c ON c.app_id = apps.id"
        )

    def find(self, *, ordered: bool) -> str:
        order = " ORDER BY id" if ordered else ""
        return (
            f"SELECT id, stored, actual FROM ({self.comparison}) AS w WHERE stored <> actual{order}"
        )

    def repair(self) -> str:
        # No updated_at: a recount is not an edit of the app.
        return (
            f"UPDATE apps SET {self.column} = w.actual FROM ({self.comparison}) AS w "
            "WHERE apps.id = w.id AND w.stored <> w.actual"
        )


COUNTERS = {
    "stars": CounterSql("star_count", "SELECT app_id, count(*) AS n FROM stars GROUP BY app_id"),
    "favorites": CounterSql(
        "favorite_count", "SELECT app_id, count(*) AS n FROM favorites GROUP BY app_id"
    ),
    "forks": CounterSql(
        "fork_count",
        "SELECT parent_app_id AS app_id, count(*) AS n FROM apps "
        "WHERE parent_app_id IS NOT NULL AND deleted_at IS NULL GROUP BY parent_app_id",
    ),
    # Rollups outlive raw view events, so the counter is the sum of the rollups.
    "views": CounterSql(
        "view_count", "SELECT app_id, sum(views) AS n FROM app_daily_stats GROUP BY app_id"
    ),
}
