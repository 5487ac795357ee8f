"""What every Studio view shares: a read-only sqladmin view with credential columns never
loaded, JSON shown as JSON, and the checked forms behind the pages' actions."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

import anyio.to_thread
from markupsafe import Markup, escape
from sqladmin import ModelView
from sqladmin.filters import StaticValuesFilter
from sqladmin.flash import Flash
from sqladmin.formatters import BASE_FORMATTERS
from sqlalchemy import Select, Subquery, func, select
from sqlalchemy.orm import defer
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.errors import StichError
from stich.studio.auth import StudioAdmin, current_admin, request_meta
from stich.studio.edits import StudioEdits
from stich.studio.redaction import hidden_columns, scrub_credentials, table_of

_E = TypeVar("_E")


@dataclass(frozen=True)
class StudioContext:
    """What the views of one mounted Studio need beyond sqladmin's session maker."""

    database: Database
    settings: Settings
    hasher: KeyedHasher


def pretty_json(value: Any) -> Markup:
    """A JSON column as indented JSON (not a Python repr), escaped, credential fields out."""
    value = scrub_credentials(value)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    # tabler draws <pre> dark; the Studio's JSON sits in light tables, so it stays light.
    style = "background:#f6f8fb;color:#1d273b;border:1px solid #e6e7e9"
    return Markup('<pre class="mb-0 p-2 studio-json" style="{}">{}</pre>').format(
        style, escape(text)
    )


def compact_json(value: Any) -> Markup:
    """A JSON column on one line, for lists (shortened; the detail page has it all)."""
    value = scrub_credentials(value)
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > _LIST_JSON_MAX:
        text = text[: _LIST_JSON_MAX - 1] + "\u2026"
    return Markup("<code>{}</code>").format(escape(text))


_LIST_JSON_MAX = 80
# sqladmin's formatters, plus JSON (not a Python repr) for the values of JSON columns.
STUDIO_FORMATTERS: dict[Any, Callable[[Any], Any]] = {
    **BASE_FORMATTERS,
    dict: pretty_json,
    list: pretty_json,
}
STUDIO_LIST_FORMATTERS: dict[Any, Callable[[Any], Any]] = {
    **BASE_FORMATTERS,
    dict: compact_json,
    list: compact_json,
}


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
    column_type_formatters: ClassVar[dict[Any, Callable[[Any], Any]]] = STUDIO_LIST_FORMATTERS
    column_type_formatters_detail: ClassVar[dict[Any, Callable[[Any], Any]]] = STUDIO_FORMATTERS

    def list_query(self, request: Request) -> Select[Any]:
        return super().list_query(request).options(*self._without_credentials())

    async def count(self, request: Request, stmt: Select[Any] | None = None) -> int:
        """sqladmin counts the sorted list query; the order only costs a sort (on 100k
        apps, 100 ms of a temporary B-tree), so the count runs without it."""
        return int(await super().count(request, None if stmt is None else unordered(stmt)))

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

    async def _render(self, request: Request, template: str, context: dict[str, Any]) -> Response:
        return await self.templates.TemplateResponse(request, template, context)


def unordered(count_stmt: Select[Any]) -> Select[Any]:
    """``SELECT count(*) FROM (<list query>)`` with the inner ORDER BY dropped."""
    froms = count_stmt.get_final_froms()
    if len(froms) == 1 and isinstance(froms[0], Subquery):
        inner = froms[0].element
        if isinstance(inner, Select):
            return select(func.count()).select_from(inner.order_by(None).subquery())
    return count_stmt


async def checked_form(request: Request, admin: StudioAdmin) -> FormData:
    """The posted form, if it carries the admin's CSRF token (else 403)."""
    form = await request.form()
    token = str(form.get("csrf") or "")
    if not hmac.compare_digest(token.encode(), admin.csrf_token.encode()):
        raise HTTPException(status_code=403, detail="The form expired; reload the page.")
    return form


async def run_edit(request: Request, edit: Callable[..., str], *args: Any) -> None:
    """Run one edit on a worker thread; say what happened (or why not) on the next page."""
    try:
        message = await anyio.to_thread.run_sync(edit, *args)
    except StichError as exc:
        Flash.error(request, exc.message, title="Not changed")
    else:
        Flash.success(request, message, title="Saved")


def back_to(request: Request, form: FormData, page: str, pk: str) -> RedirectResponse:
    """After a POST: back to the page the form was on (its details page, or the manage page)."""
    if form.get("return_to") == "details":
        target = str(request.url_for("admin:details", identity=page, pk=pk))
    else:
        target = str(request.url)
    return RedirectResponse(target, status_code=303)


def choice(kind: Callable[[str], _E], raw: object) -> _E:
    """A posted value as one of the allowed choices (else 400)."""
    try:
        return kind(str(raw))
    except ValueError:
        raise HTTPException(status_code=400, detail="Unknown change.") from None


def choice_bool(raw: object) -> bool:
    if raw not in ("true", "false"):
        raise HTTPException(status_code=400, detail="Unknown change.")
    return raw == "true"


__all__ = [
    "STUDIO_FORMATTERS",
    "STUDIO_LIST_FORMATTERS",
    "StudioContext",
    "StudioView",
    "back_to",
    "checked_form",
    "choice",
    "choice_bool",
    "current_admin",
    "pretty_json",
    "run_edit",
]


class KnownValuesFilter(StaticValuesFilter):
    """sqladmin's list filter over fixed values, refusing any other value with a 400
    (the base class compares the column with whatever the query string holds, and an enum
    column fails on an unknown value: a 500)."""

    async def get_filtered_query(self, query: Select[Any], value: Any, model: Any) -> Select[Any]:
        known = {option for option, _ in self.values}
        if value is not None and value not in ("", "__all") and value not in known:
            raise HTTPException(status_code=400, detail=f"unknown {self.parameter_name}: {value!r}")
        return cast(Select[Any], await super().get_filtered_query(query, value, model))
