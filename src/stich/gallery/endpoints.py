"""HTTP endpoints for the gallery (mounted under /api, before apps so /apps/public wins).

``GET /apps/public`` (the feed), ``PUT``/``DELETE /apps/{id}/star`` and ``/favorite``,
``GET /me/stars``, ``GET /me/favorites`` and ``GET /users/{username}``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from stich.api.context import RequestContext
from stich.api.deps import Context
from stich.api.inputs import AppIdPath, UsernamePath
from stich.api.reads import inline_reads, run_in_read_threads
from stich.apps.schemas import Framework
from stich.auth.dependencies import CurrentUser, OptionalPrincipal, api_key_scopes
from stich.auth.principal import Principal
from stich.auth.schemas import ApiScope
from stich.config import Settings
from stich.gallery import search
from stich.gallery.feed import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    FeedPeriod,
    FeedRequest,
    FeedSort,
    UnboundedPage,
)
from stich.gallery.repository import Reaction
from stich.gallery.schemas import (
    FavoriteOut,
    FeedOut,
    ProfileOut,
    ReactedApp,
    ReactedPage,
    StarOut,
    error_responses,
    feed_json,
)
from stich.gallery.service import GalleryService, ReactionState

# An API key needs apps:read to read the gallery and apps:write to star or favorite.
router = APIRouter(
    tags=["gallery"],
    dependencies=[Depends(api_key_scopes(ApiScope.APPS_READ, ApiScope.APPS_WRITE))],
)

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Items per page, 1..100.")]
Cursor = Annotated[
    str | None, Field(max_length=512, description="`next_cursor` of the previous page.")
]


class FeedParams(BaseModel):
    """Query parameters of ``GET /apps/public``."""

    sort: FeedSort = Field(
        default=FeedSort.RECENT,
        description="recent | updated | popular (stars) | viewed (views) | trending.",
    )
    period: FeedPeriod = Field(
        default=FeedPeriod.ALL,
        description="Window of the counts for popular, viewed and trending; "
        "recent and updated ignore it.",
    )
    framework: Framework | None = None
    q: str | None = Field(
        default=None,
        max_length=search.MAX_QUERY_LENGTH,
        description="Words to find in titles and descriptions (each as a prefix).",
    )
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor = None

    def request(self) -> FeedRequest:
        terms = search.search_terms(self.q) if self.q and self.q.strip() else []
        return FeedRequest(
            sort=self.sort,
            period=self.period,
            framework=self.framework,
            search_terms=tuple(terms),
            limit=self.limit,
            cursor=self.cursor,
        )


class PageParams(BaseModel):
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor = None


@router.get("/apps/public", response_model=FeedOut, responses=error_responses(401, 422))
async def public_feed(
    params: Annotated[FeedParams, Query()],
    request: Request,
    ctx: Context,
    principal: OptionalPrincipal,
) -> Response:
    """The public gallery: every public, live, ready or deployed app, keyset-paged."""
    feed = params.request()
    settings: Settings = request.app.state.settings  # (as get_settings, one dependency less)
    max_age = timedelta(seconds=settings.feed_ranking_max_age_seconds)
    # A page of bounded cost runs on the event loop where reads never wait (SQLite; see
    # stich.api.reads); a search or a live ranking, or any read on PostgreSQL, in the pool.
    if inline_reads(request) and not feed.search_terms:
        try:
            return _feed_page(ctx, feed, principal, max_age, bounded_only=True)
        except UnboundedPage:
            pass
    return await run_in_read_threads(request, _feed_page, ctx, feed, principal, max_age)


def _feed_page(
    ctx: RequestContext,
    feed: FeedRequest,
    principal: Principal | None,
    max_age: timedelta,
    *,
    bounded_only: bool = False,
) -> Response:
    with ctx.read(fallback="fast") as uow:
        service = GalleryService(uow.session, ranking_max_age=max_age)
        page = service.feed(feed, principal, bounded_only=bounded_only)
    return Response(feed_json(page), media_type="application/json")  # FeedOut's body


def _react(
    ctx: Context, principal: Principal, app_id: str, reaction: Reaction, *, on: bool
) -> ReactionState:
    with ctx.write() as uow:
        return GalleryService(uow.session).react(reaction, principal, app_id, on=on)


@router.put("/apps/{app_id}/star", response_model=StarOut, responses=error_responses(401, 404, 422))
def star_app(app_id: AppIdPath, ctx: Context, principal: CurrentUser) -> StarOut:
    """Star an app you can see (idempotent)."""
    state = _react(ctx, principal, app_id, Reaction.STAR, on=True)
    return StarOut(starred=state.active, star_count=state.count)


@router.delete(
    "/apps/{app_id}/star", response_model=StarOut, responses=error_responses(401, 404, 422)
)
def unstar_app(app_id: AppIdPath, ctx: Context, principal: CurrentUser) -> StarOut:
    """Take your star back (idempotent)."""
    state = _react(ctx, principal, app_id, Reaction.STAR, on=False)
    return StarOut(starred=state.active, star_count=state.count)


@router.put(
    "/apps/{app_id}/favorite",
    response_model=FavoriteOut,
    responses=error_responses(401, 404, 422),
)
def favorite_app(app_id: AppIdPath, ctx: Context, principal: CurrentUser) -> FavoriteOut:
    """Add an app you can see to your favorites (idempotent)."""
    state = _react(ctx, principal, app_id, Reaction.FAVORITE, on=True)
    return FavoriteOut(favorited=state.active, favorite_count=state.count)


@router.delete(
    "/apps/{app_id}/favorite",
    response_model=FavoriteOut,
    responses=error_responses(401, 404, 422),
)
def unfavorite_app(app_id: AppIdPath, ctx: Context, principal: CurrentUser) -> FavoriteOut:
    """Remove an app from your favorites (idempotent)."""
    state = _react(ctx, principal, app_id, Reaction.FAVORITE, on=False)
    return FavoriteOut(favorited=state.active, favorite_count=state.count)


def _reacted(
    ctx: Context, principal: Principal, reaction: Reaction, params: PageParams
) -> ReactedPage:
    with ctx.read(fallback="fresh") as uow:
        page = GalleryService(uow.session).reacted(
            reaction, principal, limit=params.limit, cursor=params.cursor
        )
    return ReactedPage(
        items=[ReactedApp.from_row(row) for row in page.items],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@router.get("/me/stars", response_model=ReactedPage, responses=error_responses(401, 422))
def my_stars(
    params: Annotated[PageParams, Query()], ctx: Context, principal: CurrentUser
) -> ReactedPage:
    """Apps you starred, most recently starred first."""
    return _reacted(ctx, principal, Reaction.STAR, params)


@router.get("/me/favorites", response_model=ReactedPage, responses=error_responses(401, 422))
def my_favorites(
    params: Annotated[PageParams, Query()], ctx: Context, principal: CurrentUser
) -> ReactedPage:
    """Your favorites, most recently added first."""
    return _reacted(ctx, principal, Reaction.FAVORITE, params)


@router.get(
    "/users/{username}", response_model=ProfileOut, responses=error_responses(401, 404, 422)
)
def public_profile(
    username: UsernamePath,
    params: Annotated[PageParams, Query()],
    ctx: Context,
    principal: OptionalPrincipal,
) -> ProfileOut:
    """A user's public profile and public apps, newest first."""
    with ctx.read(fallback="fast") as uow:
        profile = GalleryService(uow.session).profile(
            username, principal, limit=params.limit, cursor=params.cursor
        )
    return ProfileOut.from_profile(profile)
