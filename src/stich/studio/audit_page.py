"""The audit log in the Studio: newest first, the actor and the resource linked to their
pages when they still exist, the old and new values as a diff (``audit_diff``)."""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

import anyio.to_thread
from sqladmin.pagination import Pagination
from starlette.requests import Request

from stich.audit.models import ActorType, AuditLog
from stich.studio.page_data import listed_entries
from stich.studio.redaction import table_of, visible_columns
from stich.studio.view_base import KnownValuesFilter, StudioView


class AuditLogView(StudioView, model=AuditLog):
    name = "Audit entry"
    name_plural = "Audit log"
    icon = "fa-solid fa-clipboard-list"
    list_template = "studio/audit_list.html"
    column_list: ClassVar[builtins.list[str]] = [
        "created_at",
        "actor_id",
        "action",
        "resource_type",
        "resource_id",
        "old_values",
        "new_values",
        "id",
    ]
    column_details_list: ClassVar[builtins.list[str]] = visible_columns(table_of(AuditLog))
    column_searchable_list: ClassVar[builtins.list[str]] = [
        "action",
        "actor_id",
        "subject_user_id",
        "resource_id",
        "request_id",
    ]
    column_sortable_list: ClassVar[builtins.list[str]] = ["created_at", "action"]
    column_default_sort: ClassVar[builtins.list[tuple[str, bool]]] = [
        ("created_at", True),
        ("id", True),
    ]
    column_filters: ClassVar[builtins.list[Any]] = [
        KnownValuesFilter(AuditLog.actor_type, [(a.value, a.value) for a in ActorType]),
    ]

    async def list(self, request: Request) -> Pagination:
        """sqladmin's page of entries, with actor names and which resources still exist."""
        pagination = await super().list(request)
        pagination.rows = await anyio.to_thread.run_sync(
            listed_entries, self.studio.database, pagination.rows
        )
        return pagination
