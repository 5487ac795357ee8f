"""The Studio's home page: is sign-up healthy, what is trending, is someone hammering
sign-in, is the deployment well.

Everything is read in one read unit of work on the primary, through the services the API
uses: the gallery's feed for the top apps (the same ranking snapshots and scores),
:mod:`stich.studio.activity` for the per-day series (sums of the rollups the per-app
analytics read) and :mod:`stich.studio.health` for the deployment. The page answers a
``Server-Timing`` header with the time it took, the number docs/benchmarks.md quotes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import anyio.to_thread
from markupsafe import Markup
from sqladmin.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from stich.analytics.queue import ViewQueue
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery.feed import FeedRequest
from stich.gallery.rows import GalleryRow
from stich.gallery.service import GalleryService
from stich.gallery.sorts import FeedPeriod, FeedSort
from stich.studio.activity import (
    SERIES_LABELS,
    ActivityService,
    DailyActivity,
    DashboardPeriod,
    SignInTrouble,
)
from stich.studio.charts import daily_chart
from stich.studio.health import DeploymentHealth, ago, deployment_health
from stich.studio.past_days import PastDays

TOP_APPS = 10
# The feed requests the two "top apps" tables use: exactly what GET /api/apps/public
# answers for ?sort=trending and ?sort=viewed&period=week.
TRENDING = FeedRequest(sort=FeedSort.TRENDING, limit=TOP_APPS)
VIEWED_THIS_WEEK = FeedRequest(sort=FeedSort.VIEWED, period=FeedPeriod.WEEK, limit=TOP_APPS)
# Which series each chart draws (keys of SERIES_LABELS), by the chart's data-chart key;
# columns for the small counts, lines for the busy ones.
CHARTS: dict[str, tuple[str, tuple[str, ...], Literal["line", "bar"]]] = {
    "signups": ("Sign-ups per day", ("signups",), "bar"),
    "apps": ("Apps created and published per day", ("apps_created", "apps_published"), "bar"),
    "views": ("Views per day", ("views",), "line"),
    "stars": ("Stars per day", ("stars",), "bar"),
}

ViewQueueSource = Callable[[], ViewQueue | None]


@dataclass(frozen=True)
class DashboardData:
    period: DashboardPeriod
    now: datetime
    today: date
    activity: DailyActivity
    trending: list[GalleryRow]
    viewed_this_week: list[GalleryRow]
    trouble: SignInTrouble
    health: DeploymentHealth


def load_dashboard(
    database: Database,
    period: DashboardPeriod,
    *,
    view_queue: ViewQueue | None = None,
    now: datetime | None = None,
    past: PastDays | None = None,
) -> DashboardData:
    """The dashboard's numbers for the ``period`` days ending today (UTC); ``past`` keeps
    the days before today between calls (None: read every day now)."""
    now = (now or utcnow()).astimezone(UTC)
    today = now.date()
    with database.read("fresh") as uow:
        session = uow.session
        gallery = GalleryService(session, clock=lambda: now)
        activity = ActivityService(session)
        if past is None:
            days = activity.daily(today - timedelta(days=period.days - 1), today)
        else:
            days = past.before(today, activity).followed_by(activity.daily(today, today))
        return DashboardData(
            period=period,
            now=now,
            today=today,
            activity=days.last(period.days),
            trending=gallery.feed(TRENDING, None, today=today).items,
            viewed_this_week=gallery.feed(VIEWED_THIS_WEEK, None, today=today).items,
            trouble=activity.sign_in_trouble(now),
            health=deployment_health(session, database, view_queue, now),
        )


def charts_of(activity: DailyActivity) -> dict[str, Markup]:
    return {
        key: daily_chart(
            title,
            activity.days,
            {SERIES_LABELS[name]: activity.series[name] for name in names},
            key=key,
            kind=kind,
        )
        for key, (title, names, kind) in CHARTS.items()
    }


def parse_period(raw: str | None) -> DashboardPeriod:
    if raw is None or raw == "":
        return DashboardPeriod.MONTH
    try:
        return DashboardPeriod(raw)
    except ValueError:
        choices = " or ".join(p.value for p in DashboardPeriod)
        raise HTTPException(400, f"period must be {choices} (days)") from None


class DashboardPage:
    """The handler behind /admin/ (authentication has run: see StudioConsole.index)."""

    def __init__(
        self,
        database: Database,
        view_queue: ViewQueueSource,
        *,
        past_seconds: float,
    ) -> None:
        self.database = database
        self.view_queue = view_queue
        self.past = PastDays(database, past_seconds)

    async def render(self, request: Request, templates: Jinja2Templates) -> Response:
        period = parse_period(request.query_params.get("period"))
        started = time.perf_counter()
        data = await anyio.to_thread.run_sync(
            lambda: load_dashboard(
                self.database,
                period,
                view_queue=self.view_queue(),
                now=utcnow(),
                past=self.past,
            )
        )
        context = {
            "title": "Dashboard",
            "subtitle": f"The last {period.days} days, UTC",
            "dash": data,
            "charts": charts_of(data.activity),
            "periods": list(DashboardPeriod),
            "totals": {name: data.activity.total(name) for name in SERIES_LABELS},
            "today_values": {name: data.activity.series[name][-1] for name in SERIES_LABELS},
            "labels": SERIES_LABELS,
            "ago": lambda at: ago(data.now - at),
        }
        response = await templates.TemplateResponse(request, "sqladmin/index.html", context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"dashboard;dur={elapsed_ms:.1f}"
        return response
