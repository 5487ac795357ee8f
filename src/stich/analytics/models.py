"""Raw view events (de-duplicated per viewer and window) and per-day rollups."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from stich.auth.models import TOKEN_HASH_LENGTH, DeviceType
from stich.db.base import ID_LENGTH, Base, UTCDateTime, enum_column

# INTEGER PRIMARY KEY is SQLite's rowid (cheapest insert); BIGINT identity on PostgreSQL.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class AppView(Base):
    __tablename__ = "app_views"
    __table_args__ = (UniqueConstraint("app_id", "viewer_key", "window_start"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    # Keyed hash (server key) of the user id, or of daily salt + IP + user agent + app.
    viewer_key: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), nullable=False)
    # Start of the de-duplication window this view falls in (epoch seconds, UTC).
    window_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    user_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="SET NULL")
    )
    referrer_origin: Mapped[str | None] = mapped_column(String(255))
    device_type: Mapped[DeviceType] = mapped_column(
        enum_column(DeviceType, "view_device_type"), default=DeviceType.UNKNOWN, nullable=False
    )
    viewed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


Index("ix_app_views_app_viewed", AppView.app_id, AppView.viewed_at)
Index("ix_app_views_viewed_at", AppView.viewed_at)


class AppDailyStats(Base):
    """Per-app, per-UTC-day rollup, updated in the same transaction as the events."""

    __tablename__ = "app_daily_stats"

    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    views: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    unique_viewers: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    stars: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


# Period sorts of the feed sum rollups by day across apps; the counters ride along so the
# sum is read from the index alone (SQLite has no INCLUDE).
Index(
    "ix_app_daily_stats_day",
    AppDailyStats.day,
    AppDailyStats.app_id,
    AppDailyStats.stars,
    AppDailyStats.views,
)


class BreakdownDimension(StrEnum):
    REFERRER = "referrer"
    DEVICE = "device"


class AppDailyBreakdown(Base):
    """Per-app, per-UTC-day view counts by referrer origin and by device type.

    Rolled up with every view, so an app's analytics read a few hundred rows whatever the
    size of ``app_views``. ``value`` is the origin (``""`` for none) or the device type.
    """

    __tablename__ = "app_daily_breakdowns"

    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[BreakdownDimension] = mapped_column(
        enum_column(BreakdownDimension, "breakdown_dimension"), primary_key=True
    )
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    views: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
