"""HTTP endpoints for analytics (mounted under /api).

``POST /apps/{id}/views``, ``GET /apps/{id}/analytics`` and ``GET /me/stats``, plus
:func:`queue_view`, which ``GET /apps/{id}`` calls to count a view of an app's detail page.
Neither opens a write transaction: views go to the view queue (:mod:`stich.analytics.queue`)
and are counted in batches.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from sqlalchemy.orm import Session

from stich.analytics.queue import ViewQueue
from stich.analytics.schemas import AnalyticsOut, StatsOut, ViewAccepted, ViewIn
from stich.analytics.service import (
    AnalyticsPeriod,
    AnalyticsService,
    ViewEvent,
    app_not_found,
    prepare_view,
)
from stich.analytics.viewer import Viewer
from stich.api.context import RequestContext
from stich.api.deps import Context
from stich.api.inputs import AppIdPath
from stich.auth.dependencies import AnyPrincipal, CurrentUser, OptionalPrincipal, api_key_scopes
from stich.auth.principal import Principal
from stich.auth.schemas import ApiScope
from stich.db.base import utcnow
from stich.gallery.schemas import error_responses

# An API key needs apps:read (recording a view is part of reading an app).
router = APIRouter(
    tags=["analytics"],
    dependencies=[
        Depends(api_key_scopes(ApiScope.APPS_READ, ApiScope.APPS_WRITE, read_suffixes=("/views",)))
    ],
)


def _service(ctx: RequestContext, session: Session) -> AnalyticsService:
    window = ctx.db.settings.view_dedup_window_seconds
    return AnalyticsService(session, ctx.hasher, window_seconds=window)


def viewer_for(ctx: RequestContext, principal: Principal | None) -> Viewer:
    """The viewer behind a request: the account, the anonymous token, or the client."""
    if principal is not None and principal.is_user:
        return Viewer(user_id=principal.user_id, user_agent=ctx.user_agent)
    if principal is not None and principal.anonymous_owner_hash is not None:
        return Viewer(
            anonymous_owner_hash=principal.anonymous_owner_hash, user_agent=ctx.user_agent
        )
    return Viewer(client_ip=ctx.client_ip, user_agent=ctx.user_agent)


def view_queue(request: Request) -> ViewQueue:
    queue: ViewQueue = request.app.state.view_queue
    return queue


def queue_view(
    request: Request,
    ctx: RequestContext,
    principal: Principal | None,
    app_id: str,
    *,
    referrer: str | None = None,
) -> bool:
    """Hand a view to the view queue without waiting for the database; False for a bot
    or a shed view. Whether it counts (a public app, a new window) is decided when its
    batch is ingested, a flush interval later."""
    event = ViewEvent(
        app_id=app_id, viewer=viewer_for(ctx, principal), at=utcnow(), referrer=referrer
    )
    window = ctx.db.settings.view_dedup_window_seconds
    view = prepare_view(event, ctx.hasher, window)
    return view is not None and view_queue(request).put(view)


@router.post(
    "/apps/{app_id}/views",
    status_code=202,
    response_model=ViewAccepted,
    responses=error_responses(401, 404, 422),
)
def record_view(
    app_id: AppIdPath,
    request: Request,
    ctx: Context,
    principal: OptionalPrincipal,
    body: Annotated[ViewIn | None, Body()] = None,
) -> ViewAccepted:
    """Queue a view (202). It counts once per viewer per de-duplication window (default 30
    minutes), for apps in the public gallery and never for bots, within a couple of seconds;
    the app's counts and analytics show it then. An app you cannot see is a 404 at once."""
    referrer = body.referrer if body and body.referrer else request.headers.get("referer")
    with ctx.read(fallback="fast" if principal is None else "fresh") as uow:
        visible = _service(ctx, uow.session).can_see(principal, app_id)
    if not visible:
        raise app_not_found()
    queued = queue_view(request, ctx, principal, app_id, referrer=referrer)
    return ViewAccepted(queued=queued)


@router.get(
    "/apps/{app_id}/analytics",
    response_model=AnalyticsOut,
    responses=error_responses(401, 403, 404, 422),
)
def app_analytics(
    app_id: AppIdPath,
    ctx: Context,
    principal: AnyPrincipal,
    period: Annotated[AnalyticsPeriod, Query(description="week | month | quarter")] = (
        AnalyticsPeriod.WEEK
    ),
) -> AnalyticsOut:
    """Views, unique viewers and stars per UTC day, top referrers and devices (owners and
    admins)."""
    with ctx.read_fresh() as uow:
        analytics = _service(ctx, uow.session).app_analytics(principal, app_id, period)
    return AnalyticsOut.from_analytics(analytics)


@router.get("/me/stats", response_model=StatsOut, responses=error_responses(401))
def my_stats(ctx: Context, principal: CurrentUser) -> StatsOut:
    """Your apps, the stars and views they received, and your activity streak."""
    with ctx.read(fallback="fresh") as uow:
        stats = _service(ctx, uow.session).my_stats(principal)
    return StatsOut.from_stats(stats)
