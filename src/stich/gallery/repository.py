"""All SQL of stars, favorites, "my stars / favorites" and public profiles.

Toggles never check-then-insert: the event row is inserted with ``ON CONFLICT DO
NOTHING RETURNING`` (or deleted with ``DELETE ... RETURNING``), and the counters move
with an atomic ``UPDATE ... SET n = n + 1`` only when a row really came or went. Counter
updates keep ``updated_at`` as it is: a star is not an edit of the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from stich.analytics.models import AppDailyStats
from stich.analytics.sql import insert_for
from stich.apps.models import FEED_PREDICATE, App
from stich.apps.visibility import publicly_visible, visible_to
from stich.auth.principal import Principal
from stich.db.pagination import Page, decode_cursor, encode_cursor
from stich.gallery.models import Favorite, Star
from stich.gallery.rows import Column, GalleryRow, descending_after, gallery_select, to_row
from stich.users.models import User

T = TypeVar("T")


class Reaction(StrEnum):
    STAR = "star"
    FAVORITE = "favorite"


_EVENTS: dict[Reaction, type[Star] | type[Favorite]] = {
    Reaction.STAR: Star,
    Reaction.FAVORITE: Favorite,
}
_COUNTERS: dict[Reaction, InstrumentedAttribute[int]] = {
    Reaction.STAR: App.star_count,
    Reaction.FAVORITE: App.favorite_count,
}


@dataclass(frozen=True)
class AppGlimpse:
    """What a toggle needs to know about an app the actor can see."""

    id: str
    star_count: int
    favorite_count: int
    view_count: int
    listed: bool  # in the public feed

    def count(self, reaction: Reaction) -> int:
        return self.star_count if reaction is Reaction.STAR else self.favorite_count


@dataclass(frozen=True)
class ReactedRow:
    app: GalleryRow
    reacted_at: datetime


@dataclass(frozen=True)
class ProfileUser:
    id: str
    username: str
    display_name: str
    avatar_url: str | None
    bio: str | None
    created_at: datetime


@dataclass(frozen=True)
class ProfileTotals:
    public_apps: int
    stars_received: int
    views_received: int


class GalleryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- toggles -----------------------------------------------------------------------

    def visible_app(self, app_id: str, principal: Principal | None) -> AppGlimpse | None:
        row = self.session.execute(
            select(
                App.id,
                App.star_count,
                App.favorite_count,
                App.view_count,
                publicly_visible().label("listed"),
            ).where(App.id == app_id, visible_to(principal))
        ).one_or_none()
        if row is None:
            return None
        return AppGlimpse(
            id=row.id,
            star_count=row.star_count,
            favorite_count=row.favorite_count,
            view_count=row.view_count,
            listed=bool(row.listed),
        )

    def add_event(self, reaction: Reaction, user_id: str, app_id: str, at: datetime) -> bool:
        """Insert the star/favorite row; False when it was already there."""
        model = _EVENTS[reaction]
        stmt = (
            insert_for(self.session, model)
            .values(user_id=user_id, app_id=app_id, created_at=at)
            .on_conflict_do_nothing(index_elements=["user_id", "app_id"])
            .returning(model.app_id)
        )
        return self.session.execute(stmt).first() is not None

    def remove_event(self, reaction: Reaction, user_id: str, app_id: str) -> datetime | None:
        """Delete the star/favorite row; its creation time, or None when there was none."""
        model = _EVENTS[reaction]
        stmt = (
            delete(model)
            .where(model.user_id == user_id, model.app_id == app_id)
            .returning(model.created_at)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def add_to_counter(self, reaction: Reaction, app_id: str, delta: int) -> int | None:
        """``count = count + delta`` in SQL; the new count, or None if it would go negative."""
        counter = _COUNTERS[reaction]
        stmt = (
            update(App)
            .where(App.id == app_id, counter >= -delta)
            .values({counter: counter + delta, App.updated_at: App.updated_at})
            .returning(counter)
            .execution_options(synchronize_session=False)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def add_daily_stars(self, app_id: str, day: date, delta: int) -> None:
        """Stars per day count the stars *given* that day that still stand: a star adds
        to its day, and taking it back subtracts from the same day (recountable)."""
        if delta > 0:
            stmt = insert_for(self.session, AppDailyStats).values(
                app_id=app_id, day=day, views=0, unique_viewers=0, stars=delta
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["app_id", "day"],
                set_={"stars": AppDailyStats.stars + stmt.excluded.stars},
            )
            self.session.execute(stmt)
            return
        self.session.execute(
            update(AppDailyStats)
            .where(
                AppDailyStats.app_id == app_id,
                AppDailyStats.day == day,
                AppDailyStats.stars >= -delta,
            )
            .values(stars=AppDailyStats.stars + delta)
            .execution_options(synchronize_session=False)
        )

    # -- my stars / favorites ----------------------------------------------------------

    def reacted_page(
        self, reaction: Reaction, principal: Principal, limit: int, cursor: str | None
    ) -> Page[ReactedRow]:
        """The user's stars (or favorites), newest first, of apps the user can still see."""
        model = _EVENTS[reaction]
        scope = f"me:{reaction}"
        stmt = (
            gallery_select(principal.user_id, model.created_at.label("reacted_at"))
            .join(model, model.app_id == App.id)
            .where(model.user_id == principal.user_id, visible_to(principal))
        )
        order: list[Column] = [model.created_at, model.app_id]
        if cursor is not None:
            values = decode_cursor(cursor, scope, (datetime, str))
            stmt = stmt.where(descending_after(order, list(values)))
        stmt = stmt.order_by(*(column.desc() for column in order)).limit(limit + 1)
        rows = [
            ReactedRow(app=to_row(r, viewer=True), reacted_at=r._mapping["reacted_at"])
            for r in self.session.execute(stmt)
        ]
        return _page(rows, limit, lambda last: [last.reacted_at, last.app.id], scope)

    # -- public profiles ---------------------------------------------------------------

    def profile_user(self, username: str) -> ProfileUser | None:
        row = self.session.execute(
            select(
                User.id,
                User.username,
                User.display_name,
                User.avatar_url,
                User.bio,
                User.created_at,
            ).where(
                User.username == username.strip().lower(),
                User.deleted_at.is_(None),
                User.is_active.is_(True),
                User.is_suspended.is_(False),
            )
        ).one_or_none()
        if row is None or row.username is None:
            return None
        return ProfileUser(**row._asdict())

    def profile_totals(self, user_id: str) -> ProfileTotals:
        row = self.session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(App.star_count), 0),
                func.coalesce(func.sum(App.view_count), 0),
            )
            .select_from(App)
            .where(text(FEED_PREDICATE), App.user_id == user_id)
        ).one()
        return ProfileTotals(int(row[0]), int(row[1]), int(row[2]))

    def profile_apps(
        self, user_id: str, viewer_id: str | None, limit: int, cursor: str | None
    ) -> Page[GalleryRow]:
        """The user's apps in the feed, newest first."""
        scope = f"profile:{user_id}"
        stmt = gallery_select(viewer_id).where(text(FEED_PREDICATE), App.user_id == user_id)
        order: list[Column] = [App.created_at, App.id]
        if cursor is not None:
            values = decode_cursor(cursor, scope, (datetime, str))
            stmt = stmt.where(descending_after(order, list(values)))
        stmt = stmt.order_by(*(column.desc() for column in order)).limit(limit + 1)
        rows = [to_row(r, viewer=viewer_id is not None) for r in self.session.execute(stmt)]
        return _page(rows, limit, lambda last: [last.created_at, last.id], scope)


def _page(rows: list[T], limit: int, key: Callable[[T], list[Any]], scope: str) -> Page[T]:
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None, has_more=False)
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(scope, key(rows[-1])), has_more=True)
