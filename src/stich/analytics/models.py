"""Raw view events (de-duplicated per viewer and window) and per-day rollups."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from stich.auth.models import DeviceType
from stich.db.base import ID_LENGTH, Base, UTCDateTime, enum_column

# INTEGER PRIMARY KEY is SQLite's rowid (cheapest insert); BIGINT identity on PostgreSQL.
EventId = BigInteger().with_variant(Integer(), "sqlite")
# Hex characters of the keyed viewer hash kept (128 bits: collisions are not a concern
# at any traffic a database can hold, and the key indexes are half the size).
VIEWER_KEY_LENGTH = 32


class AppView(Base):
    """One counted view: the first by its viewer of its app in a de-duplication window.

    Shaped for ingest speed (docs/gallery.md, "Views"): the one secondary index is the
    de-duplication key with the window first, so a batch's rows land together at the
    recent end of the index instead of at a random page each; no foreign keys (the ingest
    checks the app exists, and purging an app deletes its views in the same transaction);
    no user id (the keyed viewer hash is all that counting needs).
    """

    __tablename__ = "app_views"
    __table_args__ = (UniqueConstraint("window_start", "app_id", "viewer_key"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    # Keyed hash (server key) of the user id, or of daily salt + IP + user agent + app.
    viewer_key: Mapped[str] = mapped_column(String(VIEWER_KEY_LENGTH), nullable=False)
    # Start of the de-duplication window this view falls in (epoch seconds, UTC).
    window_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    referrer_origin: Mapped[str | None] = mapped_column(String(255))
    device_type: Mapped[DeviceType] = mapped_column(
        enum_column(DeviceType, "view_device_type"), default=DeviceType.UNKNOWN, nullable=False
    )
    viewed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class AppDailyViewer(Base):
    """Who viewed an app on a UTC day: one row per (day, app, viewer), so the ingest learns
    a viewer is new for the day from an insert-if-absent (``app_daily_stats.unique_viewers``
    counts these rows). Day first, like the views' key: today's inserts stay together."""

    __tablename__ = "app_daily_viewers"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy's own attribute

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    app_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    viewer_key: Mapped[str] = mapped_column(String(VIEWER_KEY_LENGTH), primary_key=True)


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


class ViewPurgeMark(Base):
    """How far the view purge has gone: raw views of days before ``purged_before`` may be
    gone (rolled up first), so their rollups are history a recount may only raise. No row:
    nothing was ever purged and every day is recounted exactly (``analytics/history.py``)."""

    __tablename__ = "view_purge_marks"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    purged_before: Mapped[date] = mapped_column(Date, nullable=False)
