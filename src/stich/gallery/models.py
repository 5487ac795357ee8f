"""Stars and favorites: one row per (user, app), unique, so toggles are idempotent."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from stich.db.base import ID_LENGTH, Base, UTCDateTime, utcnow


class Star(Base):
    __tablename__ = "stars"

    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class Favorite(Base):
    __tablename__ = "favorites"

    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


# "My stars" newest first, and per-app recounts / purges.
Index("ix_stars_user_created", Star.user_id, Star.created_at, Star.app_id)
Index("ix_stars_app_id", Star.app_id)
Index("ix_favorites_user_created", Favorite.user_id, Favorite.created_at, Favorite.app_id)
Index("ix_favorites_app_id", Favorite.app_id)


class FeedCount(Base):
    """How many apps a gallery listing holds, so the feed's ``total`` is a lookup, not a scan.

    ``scope`` is ``"all"`` or ``"framework:<name>"``. Rows are kept by database triggers on
    ``apps`` (migration 0004) whenever an app enters or leaves the feed predicate, whoever
    changes it; ``stich db verify`` recounts them.
    """

    __tablename__ = "gallery_feed_counts"

    scope: Mapped[str] = mapped_column(String(60), primary_key=True)
    app_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class FeedRanking(Base):
    """A snapshot of one windowed ranking (``"popular:week"``, ``"trending:all"``, ...):
    each app with a positive score in the window, as of the snapshot's reference day.

    Summing ``app_daily_stats`` over a window per request costs tens to hundreds of
    milliseconds at a hundred thousand apps; a snapshot makes a first page a 20-row
    index walk. Snapshots are rebuilt by ``stich maintenance run`` (the ``rankings`` job)
    into a new ``generation``; the previous generation is kept until the next rebuild so
    walks that started on it finish on it. Without a fresh snapshot the feed computes the
    ranking live (same order, same cursor format).
    """

    __tablename__ = "feed_rankings"

    ranking: Mapped[str] = mapped_column(String(20), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The app's created_at, the ranking's tie-breaker, copied so the index orders fully.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # The app's framework when ranked, so a framework's listing walks its own entries
    # (ix_feed_rankings_fw_walk). An app whose framework changed since is found in the
    # score-0 tail of its new framework until the next rebuild.
    framework: Mapped[str | None] = mapped_column(String(40))


Index(
    "ix_feed_rankings_walk",
    FeedRanking.ranking,
    FeedRanking.generation,
    FeedRanking.score,
    FeedRanking.created_at,
    FeedRanking.app_id,
)
Index(
    "ix_feed_rankings_fw_walk",
    FeedRanking.ranking,
    FeedRanking.generation,
    FeedRanking.framework,
    FeedRanking.score,
    FeedRanking.created_at,
    FeedRanking.app_id,
)
Index("ix_feed_rankings_app_id", FeedRanking.app_id)


class FeedRankingSnapshot(Base):
    """The current (and previous) generation of each ranking and what it was computed for."""

    __tablename__ = "feed_ranking_snapshots"

    ranking: Mapped[str] = mapped_column(String(20), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    previous_generation: Mapped[int | None] = mapped_column(Integer)
    reference_day: Mapped[date] = mapped_column(Date, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    app_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class FeedDemotion(Base):
    """When an app's place in a feed sort last went *down*: a counter (``star_count``,
    ``view_count``) or a day's rollup (``stars``, ``views``) lowered, by a star taken back,
    a recount, or any SQL. Kept by database triggers (migration 0007), whoever lowers it.

    A walk's later pages skip apps demoted since the walk began, so a walk never lists an
    app twice: counts that grow move apps up into pages already seen, and only a lowered
    one could bring an app back below the cursor (see ``stich.gallery.cursors``).
    """

    __tablename__ = "feed_demotions"

    app_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    demoted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
