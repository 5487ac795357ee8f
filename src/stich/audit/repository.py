"""Reading the audit trail (writing goes through :class:`stich.audit.service.AuditService`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from stich.audit.models import AuditLog
from stich.db.pagination import Page, after, decode_cursor, encode_cursor

SORT = "created_desc"


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def page_for_subject(
        self, user_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[AuditLog]:
        """Events about ``user_id``, newest first, keyset-paginated on (created_at, id)."""
        order = (AuditLog.created_at.expression, AuditLog.id.expression)
        query = select(AuditLog).where(AuditLog.subject_user_id == user_id)
        if cursor is not None:
            values = decode_cursor(cursor, SORT, (datetime, str))
            query = query.where(after(order, values, descending=True))
        rows = list(
            self.session.scalars(
                query.order_by(AuditLog.created_at.desc(), AuditLog.id.desc()).limit(limit + 1)
            )
        )
        has_more = len(rows) > limit
        items = rows[:limit]
        next_cursor = (
            encode_cursor(SORT, (items[-1].created_at, items[-1].id)) if has_more else None
        )
        return Page(items=items, next_cursor=next_cursor, has_more=has_more)

    def all_for_subject(self, user_id: str) -> list[AuditLog]:
        query = (
            select(AuditLog)
            .where(AuditLog.subject_user_id == user_id)
            .order_by(AuditLog.created_at, AuditLog.id)
        )
        return list(self.session.scalars(query))
