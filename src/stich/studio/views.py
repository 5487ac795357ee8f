"""The Studio's views: one sqladmin view per table, read-only, custom pages for apps, users
and the audit log (``app_page``, ``user_page``, ``audit_page``), generic ones for the rest.

Credential columns (``stich.studio.redaction``) are left out of every list, detail page
and export, and are not even loaded: their attributes are deferred with ``raiseload``, so
a template that tried to show one would fail instead of leaking it. The few changes an
admin makes go through the manage routes of apps and users, which call the services.
"""

from __future__ import annotations

import types
from typing import Any

from sqlalchemy.orm import DeclarativeBase

from stich import models  # noqa: F401 - every table is mapped before the views are built
from stich.db.base import Base
from stich.studio.app_page import AppView
from stich.studio.audit_page import AuditLogView
from stich.studio.redaction import key_is_sensitive, table_of, visible_columns
from stich.studio.user_page import UserView
from stich.studio.view_base import StudioContext, StudioView

_LIST_COLUMNS_MAX = 8

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


__all__ = ["StudioContext", "StudioView", "bind_views"]
