"""Request and response models of the analytics API."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from stich.analytics.service import AnalyticsPeriod, AppAnalytics, MyStats
from stich.auth.models import DeviceType
from stich.validation import OneLine


class ViewIn(BaseModel):
    referrer: OneLine | None = Field(
        default=None,
        max_length=2048,
        description="Where the viewer came from (document.referrer); only its origin is "
        "kept. Without it the Referer header is used.",
    )


class ViewAccepted(BaseModel):
    queued: bool = Field(
        description="True when the view was queued to be counted (within a couple of "
        "seconds, once per viewer per window, for apps in the gallery); false for bots, or "
        "when the server is shedding views under overload."
    )


class DayOut(BaseModel):
    day: date
    views: int
    unique_viewers: int
    stars: int


class TotalsOut(BaseModel):
    views: int
    unique_viewers: int = Field(description="Sum of each day's unique viewers.")
    stars: int = Field(description="Stars given in the period that still stand.")
    all_time_views: int
    all_time_stars: int


class ReferrerOut(BaseModel):
    origin: str | None = Field(description="scheme://host[:port]; null for direct visits.")
    views: int


class DeviceOut(BaseModel):
    device_type: DeviceType
    views: int


class AnalyticsOut(BaseModel):
    app_id: str
    period: AnalyticsPeriod
    timezone: Literal["UTC"] = "UTC"
    start: date
    end: date
    days: list[DayOut] = Field(description="Every day from start to end, oldest first.")
    totals: TotalsOut
    top_referrers: list[ReferrerOut]
    devices: list[DeviceOut]

    @classmethod
    def from_analytics(cls, a: AppAnalytics) -> AnalyticsOut:
        return cls(
            app_id=a.app_id,
            period=a.period,
            start=a.start,
            end=a.end,
            days=[
                DayOut(day=d.day, views=d.views, unique_viewers=d.unique_viewers, stars=d.stars)
                for d in a.days
            ],
            totals=TotalsOut(
                views=a.totals.views,
                unique_viewers=a.totals.unique_viewers,
                stars=a.totals.stars,
                all_time_views=a.all_time_views,
                all_time_stars=a.all_time_stars,
            ),
            top_referrers=[ReferrerOut(origin=o, views=n) for o, n in a.top_referrers],
            devices=[DeviceOut(device_type=t, views=n) for t, n in a.devices],
        )


class StatsOut(BaseModel):
    apps: int = Field(description="Your apps (not deleted).")
    public_apps: int = Field(description="Of those, the ones in the public gallery.")
    stars_received: int
    views_received: int
    streak_days: int = Field(
        description="Consecutive UTC days with activity (apps created, stars or favorites "
        "given, anything in your audit log) ending today or yesterday."
    )
    last_active_day: date | None

    @classmethod
    def from_stats(cls, s: MyStats) -> StatsOut:
        return cls(
            apps=s.apps,
            public_apps=s.public_apps,
            stars_received=s.stars_received,
            views_received=s.views_received,
            streak_days=s.streak_days,
            last_active_day=s.last_active_day,
        )
