"""One sqladmin view per table: list (search, filter, sort), detail, no generic editing.

Every view is read-only. The few changes an admin makes go through the manage pages of
apps and users (``StudioEdits``), which call the services. Credential columns
(``stich.studio.redaction``) are left out of every list, detail page and export, and are
not even loaded: their attributes are deferred with ``raiseload``, so a template that
tried to show one would fail instead of leaking it.
"""

from __future__ import annotations

import hmac
import types
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio.to_thread
from sqladmin import ModelView, action, expose
from sqladmin.filters import BooleanFilter, StaticValuesFilter
from sqladmin.flash import Flash
from sqlalchemy import Select
from sqlalchemy.orm import DeclarativeBase, defer
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stich import models  # noqa: F401 - every table is mapped before the views are built
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import ActorType, AuditLog
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import Base
from stich.errors import StichError
from stich.studio.auth import StudioAdmin, current_admin, request_meta
from stich.studio.edits import AppEdit, StudioEdits
from stich.studio.redaction import hidden_columns, key_is_sensitive, table_of, visible_columns
from stich.users.models import Role, User

_LIST_COLUMNS_MAX = 8


@dataclass(frozen=True)
class StudioContext:
    """What the views of one mounted Studio need beyond sqladmin's session maker."""

    database: Database
    settings: Settings
    hasher: KeyedHasher


class StudioView(ModelView):
    """A read-only view of one table, credential columns never loaded."""

    studio: ClassVar[StudioContext]
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    can_import = False
    page_size = 25
    page_size_options: ClassVar[list[int]] = [25, 50, 100]

    def list_query(self, request: Request) -> Select[Any]:
        return super().list_query(request).options(*self._without_credentials())

    def details_query(self, request: Request) -> Select[Any]:
        return super().details_query(request).options(*self._without_credentials())

    def _without_credentials(self) -> list[Any]:
        table = table_of(self.model)
        return [
            defer(getattr(self.model, name), raiseload=True)
            for name in hidden_columns(table)
            if not table.columns[name].primary_key
        ]

    def _edits(self, request: Request, admin: StudioAdmin) -> StudioEdits:
        meta = request_meta(request, self.studio.settings, self.studio.hasher)
        return StudioEdits(self.studio.database, self.studio.settings, meta, admin.principal)


class AppView(StudioView, model=App):
    name = "App"
    name_plural = "Apps"
    icon = "fa-solid fa-cube"
    column_list: ClassVar[list[str]] = [
        "id",
        "title",
        "user_id",
        "status",
        "visibility",
        "is_archived",
        "is_featured",
        "star_count",
        "view_count",
        "created_at",
        "deleted_at",
    ]
    column_details_list: ClassVar[list[str]] = visible_columns(table_of(App))
    column_searchable_list: ClassVar[list[str]] = ["title", "id", "user_id", "framework"]
    column_sortable_list: ClassVar[list[str]] = [
        "title",
        "created_at",
        "updated_at",
        "star_count",
        "view_count",
        "status",
    ]
    column_default_sort: ClassVar[list[tuple[str, bool]]] = [("created_at", True)]
    column_filters: ClassVar[list[Any]] = [
        StaticValuesFilter(App.status, [(s.value, s.value) for s in AppStatus]),
        StaticValuesFilter(App.visibility, [(v.value, v.value) for v in Visibility]),
        BooleanFilter(App.is_archived),
        BooleanFilter(App.is_featured),
    ]

    @action("manage", label="Change status, visibility, archive, feature", add_in_list=False)
    async def manage_action(self, request: Request) -> Response:
        app_id = request.query_params.get("pks", "").split(",")[0]
        return RedirectResponse(request.url_for("admin:view-app-manage", pk=app_id), 302)

    @expose("/manage/{pk}", methods=["GET", "POST"])
    async def manage(self, request: Request) -> Response:
        admin = current_admin(request)
        edits = self._edits(request, admin)
        app_id = request.path_params["pk"]
        if request.method == "POST":
            form = await _checked_form(request, admin)
            edit = _choice(AppEdit, form.get("edit"))
            value, url = str(form.get("value") or ""), str(form.get("deployment_url") or "")
            await _run_edit(request, edits.edit_app, app_id, edit, value, url)
            return RedirectResponse(request.url, status_code=303)
        state = await anyio.to_thread.run_sync(edits.app_state, app_id)
        if state is None:
            raise HTTPException(status_code=404)
        context = {"state": state, "csrf": admin.csrf_token, "title": "Manage app"}
        return await self.templates.TemplateResponse(request, "studio/manage_app.html", context)


class UserView(StudioView, model=User):
    name = "User"
    name_plural = "Users"
    icon = "fa-solid fa-user"
    column_list: ClassVar[list[str]] = [
        "id",
        "email",
        "username",
        "display_name",
        "role",
        "is_suspended",
        "email_verified",
        "is_active",
        "created_at",
        "deleted_at",
    ]
    column_details_list: ClassVar[list[str]] = visible_columns(table_of(User))
    column_searchable_list: ClassVar[list[str]] = ["email", "username", "display_name", "id"]
    column_sortable_list: ClassVar[list[str]] = ["email", "username", "created_at"]
    column_default_sort: ClassVar[list[tuple[str, bool]]] = [("created_at", True)]
    column_filters: ClassVar[list[Any]] = [
        StaticValuesFilter(User.role, [(r.value, r.value) for r in Role]),
        BooleanFilter(User.is_suspended),
    ]

    @action("manage", label="Suspend or lift suspension", add_in_list=False)
    async def manage_action(self, request: Request) -> Response:
        user_id = request.query_params.get("pks", "").split(",")[0]
        return RedirectResponse(request.url_for("admin:view-user-manage", pk=user_id), 302)

    @expose("/manage/{pk}", methods=["GET", "POST"])
    async def manage(self, request: Request) -> Response:
        admin = current_admin(request)
        edits = self._edits(request, admin)
        user_id = request.path_params["pk"]
        if request.method == "POST":
            form = await _checked_form(request, admin)
            if form.get("resend_verification") == "true":
                await _run_edit(request, edits.resend_verification, user_id)
                return RedirectResponse(request.url, status_code=303)
            suspended = _choice_bool(form.get("suspended"))
            await _run_edit(request, edits.set_suspended, user_id, suspended)
            return RedirectResponse(request.url, status_code=303)
        state = await anyio.to_thread.run_sync(edits.user_state, user_id)
        if state is None:
            raise HTTPException(status_code=404)
        context = {"state": state, "csrf": admin.csrf_token, "title": "Manage user"}
        return await self.templates.TemplateResponse(request, "studio/manage_user.html", context)


class AuditLogView(StudioView, model=AuditLog):
    name = "Audit entry"
    name_plural = "Audit log"
    icon = "fa-solid fa-clipboard-list"
    column_list: ClassVar[list[str]] = [
        "created_at",
        "action",
        "actor_type",
        "actor_id",
        "subject_user_id",
        "resource_type",
        "resource_id",
    ]
    column_details_list: ClassVar[list[str]] = visible_columns(table_of(AuditLog))
    column_searchable_list: ClassVar[list[str]] = [
        "action",
        "actor_id",
        "subject_user_id",
        "resource_id",
        "request_id",
    ]
    column_sortable_list: ClassVar[list[str]] = ["created_at", "action"]
    column_default_sort: ClassVar[list[tuple[str, bool]]] = [("created_at", True)]
    column_filters: ClassVar[list[Any]] = [
        StaticValuesFilter(AuditLog.actor_type, [(a.value, a.value) for a in ActorType]),
    ]


_CUSTOM_VIEWS: list[type[StudioView]] = [AppView, UserView, AuditLogView]


def bind_views(context: StudioContext) -> list[type[StudioView]]:
    """Fresh view classes for one mounted Studio: one per table, custom ones first.

    sqladmin keeps its engine, templates and admin on the view *class*, so each Studio
    gets its own subclasses (two apps in one process must not share them).
    """
    custom_models = {view.model for view in _CUSTOM_VIEWS}
    views = [_subclass(view, context) for view in _CUSTOM_VIEWS]
    mapped = sorted(
        (mapper.class_ for mapper in Base.registry.mappers if mapper.class_ not in custom_models),
        key=lambda cls: cls.__tablename__,
    )
    views.extend(_generic_view(model, context) for model in mapped)
    return views


def _subclass(view: type[StudioView], context: StudioContext) -> type[StudioView]:
    bound: type[StudioView] = types.new_class(
        view.__name__, (view,), {}, lambda ns: ns.update({"studio": context})
    )
    return bound


def _generic_view(model: type[DeclarativeBase], context: StudioContext) -> type[StudioView]:
    table = table_of(model)
    columns = visible_columns(table)
    sortable = [name for name in columns if name.endswith("_at") or name in ("day", "name")]
    attrs: dict[str, Any] = {
        "studio": context,
        "name": table.name.replace("_", " ").capitalize(),
        "name_plural": table.name.replace("_", " ").capitalize(),
        "category": "Tables",
        "column_list": columns[:_LIST_COLUMNS_MAX],
        "column_details_list": columns,
        "column_sortable_list": sortable,
    }
    if "created_at" in columns:
        attrs["column_default_sort"] = [("created_at", True)]
    if key_is_sensitive(table):
        attrs["can_view_details"] = False
        attrs["list_template"] = "studio/list_without_keys.html"
    view: type[StudioView] = types.new_class(
        f"{model.__name__}View", (StudioView,), {"model": model}, lambda ns: ns.update(attrs)
    )
    return view


async def _checked_form(request: Request, admin: StudioAdmin) -> FormData:
    """The posted form, if it carries the admin's CSRF token (else 403)."""
    form = await request.form()
    token = str(form.get("csrf") or "")
    if not hmac.compare_digest(token.encode(), admin.csrf_token.encode()):
        raise HTTPException(status_code=403, detail="The form expired; reload the page.")
    return form


async def _run_edit(request: Request, edit: Any, *args: Any) -> None:
    """Run one edit on a worker thread; say what happened (or why not) on the next page."""
    try:
        message = await anyio.to_thread.run_sync(edit, *args)
    except StichError as exc:
        Flash.error(request, exc.message, title="Not changed")
    else:
        Flash.success(request, message, title="Saved")


def _choice(kind: type[AppEdit], raw: object) -> AppEdit:
    try:
        return kind(str(raw))
    except ValueError:
        raise HTTPException(status_code=400, detail="Unknown change.") from None


def _choice_bool(raw: object) -> bool:
    if raw not in ("true", "false"):
        raise HTTPException(status_code=400, detail="Unknown change.")
    return raw == "true"
