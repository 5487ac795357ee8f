"""HTTP endpoints for analytics (mounted under /api).

``POST /apps/{id}/views``, ``GET /apps/{id}/analytics`` and ``GET /me/stats``, plus
:func:`record_detail_view`, which ``GET /apps/{id}`` calls to count a view of a public
app's detail page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from stich.analytics.schemas import AnalyticsOut, StatsOut, ViewIn, ViewOut
from stich.analytics.service import AnalyticsPeriod, AnalyticsService, ViewEvent
from stich.analytics.viewer import Viewer
from stich.api.context import RequestContext
from stich.api.deps import Context
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

AppIdPath = Annotated[str, Path(min_length=1, max_length=36, description="The app's id.")]


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


def record_detail_view(
    ctx: RequestContext, principal: Principal | None, app_id: str, *, referrer: str | None = None
) -> bool:
    """Count a view of an app's detail page, in its own write unit of work.

    For ``GET /apps/{id}``: call it after the app was read. Views of apps outside the
    public feed (an owner looking at a private app) and by bots are not counted, and it
    never raises for them; returns whether the view counted.
    """
    event = ViewEvent(
        app_id=app_id, viewer=viewer_for(ctx, principal), at=utcnow(), referrer=referrer
    )
    with ctx.write() as uow:
        return _service(ctx, uow.session).record_views([event]) == 1


@router.post(
    "/apps/{app_id}/views", response_model=ViewOut, responses=error_responses(401, 404, 422)
)
def record_view(
    app_id: AppIdPath,
    request: Request,
    ctx: Context,
    principal: OptionalPrincipal,
    body: Annotated[ViewIn | None, Body()] = None,
) -> ViewOut:
    """Count a view, once per viewer per de-duplication window (default 30 minutes)."""
    referrer = body.referrer if body and body.referrer else request.headers.get("referer")
    with ctx.write() as uow:
        result = _service(ctx, uow.session).record_view(
            principal, app_id, viewer_for(ctx, principal), referrer=referrer
        )
    return ViewOut(recorded=result.recorded, view_count=result.view_count)


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
