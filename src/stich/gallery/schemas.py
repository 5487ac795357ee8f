"""Request and response models of the gallery API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_json

from stich.api.errors import error_responses as shared_error_responses
from stich.gallery.repository import ProfileTotals, ProfileUser, ReactedRow
from stich.gallery.rows import GalleryRow
from stich.gallery.service import Profile
from stich.gallery.sorts import FeedPage


class Author(BaseModel):
    username: str | None
    display_name: str
    avatar_url: str | None


class GalleryApp(BaseModel):
    """An app as the gallery shows it: never prompts, owner hashes or deployment metadata."""

    id: str
    title: str
    description: str | None
    icon: str | None
    framework: str | None
    screenshot_url: str | None
    deployment_url: str | None
    created_at: datetime
    updated_at: datetime
    star_count: int
    view_count: int
    fork_count: int
    favorite_count: int
    author: Author | None = Field(description="None for an app made by an anonymous visitor.")
    starred: bool | None = Field(description="Whether you starred it; null when signed out.")
    favorited: bool | None = Field(
        description="Whether it is in your favorites; null when signed out."
    )
    score: int | None = Field(
        default=None,
        description="The value the feed is sorted by, for count-based sorts: stars or "
        "views in the period (or all time), or the trending score.",
    )

    @classmethod
    def from_row(cls, row: GalleryRow) -> GalleryApp:
        author = None
        if row.author_display_name is not None:
            author = Author(
                username=row.author_username,
                display_name=row.author_display_name,
                avatar_url=row.author_avatar_url,
            )
        return cls(
            id=row.id,
            title=row.title,
            description=row.description,
            icon=row.icon,
            framework=row.framework,
            screenshot_url=row.screenshot_url,
            deployment_url=row.deployment_url,
            created_at=row.created_at,
            updated_at=row.updated_at,
            star_count=row.star_count,
            view_count=row.view_count,
            fork_count=row.fork_count,
            favorite_count=row.favorite_count,
            author=author,
            starred=row.starred,
            favorited=row.favorited,
            score=row.score,
        )


class FeedOut(BaseModel):
    items: list[GalleryApp]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    has_more: bool
    total: int = Field(
        description="Apps in this listing. Exact without `q` (a maintained count); with "
        "`q`, exact up to 1000 matches and 1000 beyond (then `total_exact` is false)."
    )
    total_exact: bool

    @classmethod
    def from_page(cls, page: FeedPage) -> FeedOut:
        # Validated once from plain values (pydantic-core walks the nested lists and dicts),
        # not one model per item from Python: a third less CPU for a 20-item page.
        return cls.model_validate(_page_values(page))


def feed_json(page: FeedPage) -> bytes:
    """The JSON body of ``FeedOut.from_page(page)``, written straight from the page's
    values: they are our own rows, already of the model's types, so validating them again
    bought nothing (55 -> 31 us a page; tests/test_http_layer.py holds it to the model)."""
    return to_json(_page_values(page))


def _page_values(page: FeedPage) -> dict[str, Any]:
    return {
        "items": [_item(row) for row in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
        "total": page.total,
        "total_exact": page.total_exact,
    }


def _item(row: GalleryRow) -> dict[str, Any]:
    """A :class:`GalleryApp`'s values (see ``GalleryApp.from_row``)."""
    author = None
    if row.author_display_name is not None:
        author = {
            "username": row.author_username,
            "display_name": row.author_display_name,
            "avatar_url": row.author_avatar_url,
        }
    return {
        "id": row.id,
        "title": row.title,
        "description": row.description,
        "icon": row.icon,
        "framework": row.framework,
        "screenshot_url": row.screenshot_url,
        "deployment_url": row.deployment_url,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "star_count": row.star_count,
        "view_count": row.view_count,
        "fork_count": row.fork_count,
        "favorite_count": row.favorite_count,
        "author": author,
        "starred": row.starred,
        "favorited": row.favorited,
        "score": row.score,
    }


class StarOut(BaseModel):
    starred: bool
    star_count: int


class FavoriteOut(BaseModel):
    favorited: bool
    favorite_count: int


class ReactedApp(BaseModel):
    app: GalleryApp
    reacted_at: datetime = Field(description="When you starred (or favorited) it.")

    @classmethod
    def from_row(cls, row: ReactedRow) -> ReactedApp:
        return cls(app=GalleryApp.from_row(row.app), reacted_at=row.reacted_at)


class ReactedPage(BaseModel):
    items: list[ReactedApp]
    next_cursor: str | None
    has_more: bool


class PublicUser(BaseModel):
    username: str
    display_name: str
    avatar_url: str | None
    bio: str | None
    joined_at: datetime

    @classmethod
    def from_user(cls, user: ProfileUser) -> PublicUser:
        return cls(
            username=user.username,
            display_name=user.display_name,
            avatar_url=user.avatar_url,
            bio=user.bio,
            joined_at=user.created_at,
        )


class ProfileStats(BaseModel):
    public_apps: int
    stars_received: int = Field(description="Stars on the user's public apps.")
    views_received: int = Field(description="Views of the user's public apps.")

    @classmethod
    def from_totals(cls, totals: ProfileTotals) -> ProfileStats:
        return cls(
            public_apps=totals.public_apps,
            stars_received=totals.stars_received,
            views_received=totals.views_received,
        )


class AppsPage(BaseModel):
    items: list[GalleryApp]
    next_cursor: str | None
    has_more: bool


class ProfileOut(BaseModel):
    user: PublicUser
    stats: ProfileStats
    apps: AppsPage

    @classmethod
    def from_profile(cls, profile: Profile) -> ProfileOut:
        return cls(
            user=PublicUser.from_user(profile.user),
            stats=ProfileStats.from_totals(profile.totals),
            apps=AppsPage(
                items=[GalleryApp.from_row(row) for row in profile.apps.items],
                next_cursor=profile.apps.next_cursor,
                has_more=profile.apps.has_more,
            ),
        )


_MEANINGS = {
    401: "No valid credentials were sent (or an account is needed).",
    403: "The caller may see the app but not this (analytics are for owners and admins).",
    404: "No such app or user, or one the caller may not see.",
    422: "A parameter is malformed: sort, period, limit, cursor or search.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return shared_error_responses(*statuses, meanings=_MEANINGS)
