"""Accounts in the Studio: a list a person can read (name, email, badges, app count, last
active) and an account's page (profile, lock state, apps, sessions, API keys, audit events)
with its actions: suspend or lift it, unlock, revoke a session or key, sign out everywhere.

Every action is a CSRF-checked POST to ``/admin/user/manage/{id}``, run in one unit of
work with its audit entry naming the admin (``StudioEdits``, ``AccountEdits``).
"""

from __future__ import annotations

import builtins
from enum import StrEnum
from typing import Any, ClassVar

import anyio.to_thread
from sqladmin import action, expose
from sqladmin.filters import BooleanFilter
from sqladmin.pagination import Pagination
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stich.studio.account_edits import AccountEdits
from stich.studio.auth import StudioAdmin, request_meta
from stich.studio.page_data import listed_users, user_page
from stich.studio.redaction import table_of, visible_columns
from stich.studio.view_base import (
    KnownValuesFilter,
    StudioView,
    back_to,
    checked_form,
    choice,
    choice_bool,
    current_admin,
    run_edit,
)
from stich.users.models import Role, User


class AccountOp(StrEnum):
    """The user page's actions besides suspension and the verification mail."""

    UNLOCK = "unlock"
    REVOKE_SESSION = "revoke_session"
    REVOKE_KEY = "revoke_key"
    SIGN_OUT_EVERYWHERE = "sign_out_everywhere"


class UserView(StudioView, model=User):
    name = "User"
    name_plural = "Users"
    icon = "fa-solid fa-user"
    list_template = "studio/user_list.html"
    details_template = "studio/user_details.html"
    column_list: ClassVar[builtins.list[str]] = [
        "display_name",
        "email",
        "email_verified",
        "role",
        "is_suspended",
        "last_active_at",
        "created_at",
        "id",
    ]
    column_details_list: ClassVar[builtins.list[str]] = visible_columns(table_of(User))
    column_searchable_list: ClassVar[builtins.list[str]] = [
        "email",
        "username",
        "display_name",
        "id",
    ]
    column_sortable_list: ClassVar[builtins.list[str]] = [
        "display_name",
        "email",
        "username",
        "created_at",
        "last_active_at",
    ]
    column_default_sort: ClassVar[builtins.list[tuple[str, bool]]] = [
        ("created_at", True),
        ("id", True),
    ]
    column_filters: ClassVar[builtins.list[Any]] = [
        KnownValuesFilter(User.role, [(r.value, r.value) for r in Role]),
        BooleanFilter(User.is_suspended),
        BooleanFilter(User.email_verified),
    ]

    async def list(self, request: Request) -> Pagination:
        """sqladmin's page of accounts, with app counts (one query for the whole page)."""
        pagination = await super().list(request)
        pagination.rows = await anyio.to_thread.run_sync(
            listed_users, self.studio.database, pagination.rows
        )
        return pagination

    async def details_context(self, request: Request) -> dict[str, Any]:
        admin = current_admin(request)
        page = await anyio.to_thread.run_sync(
            user_page, self.studio.database, request.path_params["pk"]
        )
        if page is None:
            raise HTTPException(status_code=404)
        return {
            "page": page,
            "csrf": admin.csrf_token,
            "is_self": page.user_id == admin.user_id,
            "title": page.display_name,
        }

    @action("manage", label="Suspend or lift suspension", add_in_list=False)
    async def manage_action(self, request: Request) -> Response:
        user_id = request.query_params.get("pks", "").split(",")[0]
        return RedirectResponse(request.url_for("admin:view-user-manage", pk=user_id), 302)

    @expose("/manage/{pk}", methods=["GET", "POST"])
    async def manage(self, request: Request) -> Response:
        admin = current_admin(request)
        user_id = request.path_params["pk"]
        if request.method == "POST":
            form = await checked_form(request, admin)
            await self._post(request, admin, user_id, form)
            return back_to(request, form, "user", user_id)
        edits = self._edits(request, admin)
        state = await anyio.to_thread.run_sync(edits.user_state, user_id)
        if state is None:
            raise HTTPException(status_code=404)
        context = {"state": state, "csrf": admin.csrf_token, "title": "Manage user"}
        return await self._render(request, "studio/manage_user.html", context)

    async def _post(
        self, request: Request, admin: StudioAdmin, user_id: str, form: FormData
    ) -> None:
        edits = self._edits(request, admin)
        if form.get("op"):
            op = choice(AccountOp, form.get("op"))
            meta = request_meta(request, self.studio.settings, self.studio.hasher)
            account = AccountEdits(self.studio.database, meta, admin.principal)
            target = str(form.get("target") or "")
            if op is AccountOp.UNLOCK:
                await run_edit(request, account.unlock, user_id)
            elif op is AccountOp.REVOKE_SESSION:
                await run_edit(request, account.revoke_session, user_id, target)
            elif op is AccountOp.REVOKE_KEY:
                await run_edit(request, account.revoke_key, user_id, target)
            else:
                await run_edit(request, account.sign_out_everywhere, user_id)
        elif form.get("resend_verification") == "true":
            await run_edit(request, edits.resend_verification, user_id)
        else:
            suspended = choice_bool(form.get("suspended"))
            await run_edit(request, edits.set_suspended, user_id, suspended)
