"""HTTP endpoints for apps (mounted under /api).

Owners and admins get :class:`AppOwner`, everyone else :class:`AppPublic` (the ``view``
field tells which). Another principal's private app is 404, a public one it may read but
not change is 403. Archive and feature are admin-only: ``PUT /apps/{id}/archived`` and
``PUT /apps/{id}/featured``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from stich.analytics.endpoints import queue_view
from stich.api.context import RequestContext
from stich.api.deps import Context
from stich.api.errors import error_responses
from stich.api.inputs import AppIdPath
from stich.api.reads import run_bounded_read
from stich.api.responses import model_response
from stich.apps.models import AppStatus, Visibility
from stich.apps.public_detail import find_public_app
from stich.apps.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_SEARCH_LENGTH,
    AppRow,
    AppSort,
    SortDirection,
)
from stich.apps.schemas import (
    AppCreate,
    AppDetail,
    AppListItem,
    AppListPage,
    AppOut,
    AppOwner,
    AppPublic,
    AppUpdate,
    ArchivedChange,
    BulkStatusRequest,
    BulkStatusResponse,
    FeaturedChange,
    ForkRequest,
    Framework,
    StatusChange,
    TransferRequest,
    VisibilityChange,
    app_owner,
    app_public,
)
from stich.apps.service import AppService, ListParams, app_not_found
from stich.apps.visibility import can_manage
from stich.auth.dependencies import (
    AdminUser,
    AnyPrincipal,
    OptionalPrincipal,
    api_key_scopes,
)
from stich.auth.principal import Principal
from stich.auth.schemas import ApiScope
from stich.db.pagination import Page

router = APIRouter(
    tags=["apps"],
    dependencies=[Depends(api_key_scopes(ApiScope.APPS_READ, ApiScope.APPS_WRITE))],
)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "The request breaks a rule.",
        401: "No valid credentials were sent.",
        403: "The caller may read the app but not change it (or is not an admin).",
        404: "No such app, or one the caller may not see.",
        409: "The change conflicts with the app's state; details say what is allowed.",
        422: "The request is malformed.",
    }
    return error_responses(*statuses, meanings=meaning)


class ListQuery(BaseModel):
    """Query parameters of an app listing."""

    status: AppStatus | None = None
    visibility: Visibility | None = None
    framework: Framework | None = None
    q: str | None = Field(default=None, max_length=MAX_SEARCH_LENGTH)
    sort: AppSort = AppSort.CREATED_AT
    order: SortDirection = SortDirection.DESC
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=512)

    def params(self) -> ListParams:
        return ListParams(**self.model_dump())


class ForksQuery(BaseModel):
    sort: AppSort = AppSort.CREATED_AT
    order: SortDirection = SortDirection.DESC
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=512)

    def params(self) -> ListParams:
        return ListParams(**self.model_dump())


class TransferOut(BaseModel):
    app_id: str
    from_user_id: str | None
    to_user_id: str
    to_username: str | None


def _service(ctx: RequestContext, session: Session) -> AppService:
    retention = timedelta(days=ctx.db.settings.app_retention_days)
    return AppService(session, ctx.meta, retention=retention)


def _present(detail: AppDetail, principal: Principal | None) -> AppPublic | AppOwner:
    """The owner view for owners and admins, the public view for everyone else."""
    if can_manage(detail.app, principal):
        return app_owner(detail)
    return app_public(detail)


def _list_page(page: Page[AppRow], total: int | None = None) -> AppListPage:
    return AppListPage(
        items=[AppListItem.from_row(row) for row in page.items],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
        total=total,
    )


@router.post(
    "/apps",
    status_code=201,
    response_model=AppOwner,
    responses=_errors(401, 422),
    summary="Create an app (private unless asked otherwise)",
)
def create_app(body: AppCreate, ctx: Context, principal: AnyPrincipal) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).create(principal, body))


@router.get(
    "/apps/{app_id}",
    response_model=AppOut,
    responses=_errors(404, 422),
    summary="Read an app (owner view for owners and admins)",
)
async def get_app(
    app_id: AppIdPath, request: Request, ctx: Context, principal: OptionalPrincipal
) -> Response:
    # One row by key: a bounded read, so on SQLite it runs on the event loop
    # (stich.api.reads); the principal, if any, was looked up in the pool already.
    shown = await run_bounded_read(request, _read_app, request, ctx, principal, app_id)
    return model_response(shown)  # AppOut, serialized once (the hottest read)


def _read_app(
    request: Request, ctx: RequestContext, principal: Principal | None, app_id: str
) -> AppPublic | AppOwner:
    # Anonymous browsing of public apps may use any replica; a principal's own apps read
    # fresh (or at its bookmark), so a just-made change is never missing.
    shown: AppPublic | AppOwner | None
    if principal is None:
        with ctx.read(fallback="fast") as uow:
            shown = find_public_app(uow.session, app_id)
        if shown is None:
            raise app_not_found()
    else:
        with ctx.read(fallback="fresh") as uow:
            shown = _present(_service(ctx, uow.session).get(principal, app_id), principal)
    # Reading a public app's page counts as a view (de-duplicated per viewer and window),
    # as in the original; private apps and bots are not counted. The view is queued and
    # counted in a batch later: this request stays a read (a replica can serve it).
    queue_view(request, ctx, principal, app_id, referrer=request.headers.get("referer"))
    return shown


@router.patch(
    "/apps/{app_id}",
    response_model=AppOwner,
    responses=_errors(401, 403, 404, 422),
    summary="Edit an app's fields",
)
def update_app(
    app_id: AppIdPath, body: AppUpdate, ctx: Context, principal: AnyPrincipal
) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).update(principal, app_id, body))


@router.delete(
    "/apps/{app_id}",
    status_code=204,
    response_class=Response,
    responses=_errors(401, 403, 404, 422),
    summary="Delete an app (restorable during the retention period)",
)
def delete_app(app_id: AppIdPath, ctx: Context, principal: AnyPrincipal) -> Response:
    with ctx.write() as uow:
        _service(ctx, uow.session).delete(principal, app_id)
    return Response(status_code=204)


@router.post(
    "/apps/{app_id}/restore",
    response_model=AppOwner,
    responses=_errors(401, 404, 409, 422),
    summary="Restore a deleted app within the retention period",
)
def restore_app(app_id: AppIdPath, ctx: Context, principal: AnyPrincipal) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).restore(principal, app_id))


@router.post(
    "/apps/{app_id}/status",
    response_model=AppOwner,
    responses=_errors(401, 403, 404, 409, 422),
    summary="Move an app through its lifecycle (409 lists the allowed next states)",
)
def change_status(
    app_id: AppIdPath, body: StatusChange, ctx: Context, principal: AnyPrincipal
) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).change_status(principal, app_id, body))


@router.put(
    "/apps/{app_id}/visibility",
    response_model=AppOwner,
    responses=_errors(401, 403, 404, 422),
    summary="Make an app public or private (audited)",
)
def set_visibility(
    app_id: AppIdPath, body: VisibilityChange, ctx: Context, principal: AnyPrincipal
) -> AppOwner:
    with ctx.write() as uow:
        service = _service(ctx, uow.session)
        return app_owner(service.set_visibility(principal, app_id, body.visibility))


@router.put(
    "/apps/{app_id}/archived",
    response_model=AppOwner,
    responses=_errors(401, 403, 404, 422),
    summary="Archive or unarchive an app (admins; audited)",
)
def set_archived(
    app_id: AppIdPath, body: ArchivedChange, ctx: Context, admin: AdminUser
) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).set_archived(admin, app_id, body.archived))


@router.put(
    "/apps/{app_id}/featured",
    response_model=AppOwner,
    responses=_errors(401, 403, 404, 422),
    summary="Feature or unfeature an app (admins; audited)",
)
def set_featured(
    app_id: AppIdPath, body: FeaturedChange, ctx: Context, admin: AdminUser
) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).set_featured(admin, app_id, body.featured))


@router.post(
    "/apps/{app_id}/fork",
    status_code=201,
    response_model=AppOwner,
    responses=_errors(401, 404, 422),
    summary="Fork an app you can see into a new private app of yours",
)
def fork_app(
    app_id: AppIdPath,
    ctx: Context,
    principal: AnyPrincipal,
    body: Annotated[ForkRequest | None, Body()] = None,
) -> AppOwner:
    with ctx.write() as uow:
        return app_owner(_service(ctx, uow.session).fork(principal, app_id, body))


@router.get(
    "/apps/{app_id}/forks",
    response_model=AppListPage,
    responses=_errors(404, 422),
    summary="Forks of an app that the caller can see",
)
def list_forks(
    app_id: AppIdPath,
    query: Annotated[ForksQuery, Query()],
    ctx: Context,
    principal: OptionalPrincipal,
) -> AppListPage:
    with ctx.read(fallback="fast" if principal is None else "fresh") as uow:
        page = _service(ctx, uow.session).forks(principal, app_id, query.params())
        return _list_page(page)


@router.post(
    "/apps/{app_id}/transfer",
    response_model=TransferOut,
    responses=_errors(401, 403, 404, 409, 422),
    summary="Give an app to another active account (one transaction, audited)",
)
def transfer_app(
    app_id: AppIdPath, body: TransferRequest, ctx: Context, principal: AnyPrincipal
) -> TransferOut:
    with ctx.write() as uow:
        moved = _service(ctx, uow.session).transfer(principal, app_id, body.to_user)
    return TransferOut(
        app_id=moved.app_id,
        from_user_id=moved.from_user_id,
        to_user_id=moved.to_user_id,
        to_username=moved.to_username,
    )


@router.post(
    "/apps/bulk-status",
    response_model=BulkStatusResponse,
    responses=_errors(401, 409, 422),
    summary="Change the status of up to 100 apps, all or nothing",
)
def bulk_status(
    body: BulkStatusRequest, ctx: Context, principal: AnyPrincipal
) -> BulkStatusResponse:
    with ctx.write() as uow:
        return _service(ctx, uow.session).bulk_status(principal, body)


@router.get(
    "/me/apps",
    response_model=AppListPage,
    responses=_errors(401, 422),
    summary="The caller's apps, filtered, sorted and paged by cursor",
)
def my_apps(
    query: Annotated[ListQuery, Query()], ctx: Context, principal: AnyPrincipal
) -> AppListPage:
    with ctx.read(fallback="fresh") as uow:
        page, total = _service(ctx, uow.session).my_apps(principal, query.params())
        return _list_page(page, total)
