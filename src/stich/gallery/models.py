"""Stars and favorites: one row per (user, app), unique, so toggles are idempotent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
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
