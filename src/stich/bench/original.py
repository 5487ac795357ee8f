"""The original system's query shapes, expressed as SQL on our tables.

The original (Drizzle on D1) computed star and view counts per request with GROUP BY
joins or correlated subqueries over the raw event tables, paged with OFFSET, and
aggregated analytics per request. These statements reproduce those shapes so that
`stich bench` can run them side by side with ours on the same data, and the smoke test
can check both return the same apps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text

from stich.db.base import UTCDateTime

_FEED_WHERE = (
    "a.visibility = 'public' AND a.is_archived = false AND a.deleted_at IS NULL "
    "AND a.status IN ('ready', 'deployed')"
)

# sort -> (ORDER BY of the outer query, whether counts are windowed by the period)
_ORDER = {
    "recent": "a.created_at DESC, a.id DESC",
    "updated": "a.updated_at DESC, a.id DESC",
    "popular": "star_count DESC, a.id DESC",
    "viewed": "view_count DESC, a.id DESC",
    "trending": "(star_count * 3 + view_count) DESC, a.id DESC",
}


def feed(
    sort: str,
    *,
    since: datetime | None,
    framework: str | None,
    q: str | None,
    backend: str = "sqlite",
) -> TextClause:
    """The original feed: counts per request from GROUP BY subqueries, OFFSET paging.

    Search is a substring match on title and description (case-insensitive, as SQLite's
    ``LIKE`` is; ``ILIKE`` on PostgreSQL).
    """
    like = "ILIKE" if backend == "postgresql" else "LIKE"
    star_window = "WHERE s.created_at >= :since" if since else ""
    view_window = "WHERE v.viewed_at >= :since" if since else ""
    filters = [_FEED_WHERE]
    if framework:
        filters.append("a.framework = :framework")
    if q:
        filters.append(f"(a.title {like} :q OR a.description {like} :q)")
    sql = f"""
        SELECT a.id, a.title, a.description, a.framework, a.created_at, a.updated_at,
               u.display_name AS author_name, u.avatar_url AS author_avatar,
               COALESCE(sc.n, 0) AS star_count, COALESCE(vc.n, 0) AS view_count
        FROM apps a
        LEFT JOIN users u ON u.id = a.user_id
        LEFT JOIN (SELECT s.app_id, COUNT(*) AS n FROM stars s {star_window}
                   GROUP BY s.app_id) sc ON sc.app_id = a.id
        LEFT JOIN (SELECT v.app_id, COUNT(*) AS n FROM app_views v {view_window}
                   GROUP BY v.app_id) vc ON vc.app_id = a.id
        WHERE {" AND ".join(filters)}
        ORDER BY {_ORDER[sort]}
        LIMIT :limit OFFSET :offset
    """  # noqa: S608 (fixed fragments only; values are bound parameters)
    stmt = text(sql)
    # Bound as our timestamp columns store them (ISO text on SQLite, timestamptz on PG).
    return stmt.bindparams(bindparam("since", type_=UTCDateTime())) if since else stmt


def feed_params(
    *, since: datetime | None, framework: str | None, q: str | None, limit: int, offset: int
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if since:
        params["since"] = since
    if framework:
        params["framework"] = framework
    if q:
        params["q"] = f"%{q}%"
    return params


def analytics(backend: str) -> list[TextClause]:
    """The original's per-request analytics: aggregate the raw events every time
    (parameters ``app_id`` and ``since``)."""

    def day(column: str) -> str:
        return f"DATE({column})" if backend == "sqlite" else f"({column} AT TIME ZONE 'UTC')::date"

    day_of, star_day = day("viewed_at"), day("created_at")
    statements = [
        text(
            f"SELECT {day_of} AS day, COUNT(*) AS views, COUNT(DISTINCT viewer_key) AS uniques "  # noqa: S608
            "FROM app_views WHERE app_id = :app_id AND viewed_at >= :since GROUP BY 1 ORDER BY 1"
        ),
        text(
            f"SELECT {star_day} AS day, COUNT(*) FROM stars "  # noqa: S608
            "WHERE app_id = :app_id AND created_at >= :since GROUP BY 1 ORDER BY 1"
        ),
        text(
            "SELECT referrer_origin, COUNT(*) AS n FROM app_views "
            "WHERE app_id = :app_id AND viewed_at >= :since "
            "GROUP BY referrer_origin ORDER BY n DESC LIMIT 10"
        ),
        text(
            "SELECT device_type, COUNT(*) FROM app_views "
            "WHERE app_id = :app_id AND viewed_at >= :since GROUP BY device_type"
        ),
    ]
    return [stmt.bindparams(bindparam("since", type_=UTCDateTime())) for stmt in statements]
