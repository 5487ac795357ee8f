"""``AppQuery``: the typed, composable query for every list of apps.

Every listing of apps (``GET /me/apps``, forks of an app, the gallery feed, a user's
profile) is one of these. It starts from a *scope* that applies the visibility rule, so
no listing can forget it, then narrows with typed filters, and pages with a keyset
cursor on ``(sort value, id)``::

    page = (
        AppQuery.owned_by(principal)              # or .visible_to(p), .feed()
        .with_status(AppStatus.READY)
        .with_framework("react")
        .matching("todo")                         # LIKE on title/description
        .order_by(AppSort.UPDATED_AT, SortDirection.DESC)
        .page(limit=20, cursor=request_cursor)
        .fetch(session)
    )
    page.items      # list[AppRow]: columns, never ORM entities
    page.next_cursor

Rows are selected as columns with the author's username, display name and avatar
outer-joined in the same statement: one query per page, however many rows. Sort fields
and directions are enums; filter values are bound parameters; nobody pastes strings into
SQL. Callers that need more (the gallery's full-text search) add a typed SQLAlchemy
clause with :meth:`AppQuery.where`, and can take :meth:`statement` to add columns.

Instances are immutable: every method returns a new query, so a base query can be
shared and refined.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select
from sqlalchemy.orm import Session

from stich.apps import visibility
from stich.apps.models import App, AppStatus, Visibility
from stich.auth.principal import Principal
from stich.db.pagination import Page, after, decode_cursor, encode_cursor
from stich.users.models import User

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_SEARCH_LENGTH = 100


class AppSort(StrEnum):
    """Fields a list may be ordered by (each is non-null, so keyset cursors are exact)."""

    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    STAR_COUNT = "star_count"
    VIEW_COUNT = "view_count"
    FORK_COUNT = "fork_count"


class SortDirection(StrEnum):
    ASC = "asc"
    DESC = "desc"


_SORT_COLUMNS: dict[AppSort, tuple[ColumnElement[Any], type]] = {
    AppSort.CREATED_AT: (App.__table__.c.created_at, datetime),
    AppSort.UPDATED_AT: (App.__table__.c.updated_at, datetime),
    AppSort.STAR_COUNT: (App.__table__.c.star_count, int),
    AppSort.VIEW_COUNT: (App.__table__.c.view_count, int),
    AppSort.FORK_COUNT: (App.__table__.c.fork_count, int),
}


@dataclass(frozen=True, slots=True)
class AppRow:
    """One app in a list: public-safe columns only (never prompts, hashes or metadata)."""

    id: str
    title: str
    description: str | None
    icon: str | None
    framework: str | None
    status: AppStatus
    visibility: Visibility
    version: int
    parent_app_id: str | None
    deployment_url: str | None
    screenshot_url: str | None
    is_archived: bool
    is_featured: bool
    star_count: int
    view_count: int
    fork_count: int
    favorite_count: int
    created_at: datetime
    updated_at: datetime
    last_deployed_at: datetime | None
    author_id: str | None
    author_username: str | None
    author_display_name: str | None
    author_avatar_url: str | None


_AUTHOR_COLUMNS = {
    "author_id": User.id,
    "author_username": User.username,
    "author_display_name": User.display_name,
    "author_avatar_url": User.avatar_url,
}


def _row_columns() -> list[Any]:
    columns: list[Any] = []
    for f in fields(AppRow):
        if f.name in _AUTHOR_COLUMNS:
            columns.append(_AUTHOR_COLUMNS[f.name].label(f.name))
        else:
            columns.append(getattr(App, f.name))
    return columns


def escape_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally, anywhere (escape char ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class UnscopedQueryError(RuntimeError):
    """An AppQuery was run without a visibility scope: a programming error."""


# eq=False: SQL expressions overload ==, so dataclass equality would not mean anything.
@dataclass(frozen=True, eq=False)
class AppQuery:
    """A list of apps: a visibility scope, filters, an order and a page (see module doc)."""

    scope: ColumnElement[bool] | None = None
    filters: tuple[ColumnElement[bool], ...] = ()
    sort: AppSort = AppSort.CREATED_AT
    direction: SortDirection = SortDirection.DESC
    limit: int = DEFAULT_LIMIT
    cursor: str | None = field(default=None, repr=False)

    # -- scopes: where every query starts --------------------------------------------

    @classmethod
    def visible_to(cls, principal: Principal | None) -> AppQuery:
        """Live apps the principal may read: public ones, its own, or all for admins."""
        return cls(scope=visibility.visible_to(principal))

    @classmethod
    def owned_by(cls, principal: Principal) -> AppQuery:
        """The principal's own live apps (a user's, or an anonymous visitor's)."""
        return cls(scope=and_(visibility.owned_by(principal), App.deleted_at.is_(None)))

    @classmethod
    def feed(cls) -> AppQuery:
        """The public gallery: the feed predicate, spelled to match its partial indexes."""
        return cls(scope=visibility.listed_in_feed())

    # -- filters -------------------------------------------------------------------------

    def where(self, *clauses: ColumnElement[bool]) -> Self:
        """Narrow with typed SQLAlchemy clauses (e.g. the gallery's full-text match)."""
        return replace(self, filters=(*self.filters, *clauses))

    def with_status(self, *statuses: AppStatus) -> Self:
        if not statuses:
            return self
        if len(statuses) == 1:
            return self.where(App.status == statuses[0])
        return self.where(App.status.in_(statuses))

    def with_visibility(self, value: Visibility) -> Self:
        return self.where(App.visibility == value)

    def with_framework(self, framework: str) -> Self:
        return self.where(App.framework == framework)

    def by_author(self, user_id: str) -> Self:
        return self.where(App.user_id == user_id)

    def forks_of(self, app_id: str) -> Self:
        return self.where(App.parent_app_id == app_id)

    def matching(self, text: str) -> Self:
        """Case-insensitive substring match on title or description (LIKE, escaped)."""
        text = text.strip()[:MAX_SEARCH_LENGTH]
        if not text:
            return self
        pattern = escape_like(text)
        return self.where(
            or_(
                App.title.ilike(pattern, escape="\\"),
                App.description.ilike(pattern, escape="\\"),
            )
        )

    # -- order and page ------------------------------------------------------------------

    def order_by(self, sort: AppSort, direction: SortDirection = SortDirection.DESC) -> Self:
        return replace(self, sort=sort, direction=direction)

    def page(self, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Self:
        return replace(self, limit=max(1, min(limit, MAX_LIMIT)), cursor=cursor or None)

    # -- SQL -----------------------------------------------------------------------------

    @property
    def _cursor_key(self) -> str:
        return f"apps:{self.sort.value}:{self.direction.value}"

    def _where(self) -> list[ColumnElement[bool]]:
        if self.scope is None:
            raise UnscopedQueryError(
                "start an AppQuery from a scope: visible_to(), owned_by() or feed()"
            )
        return [self.scope, *self.filters]

    def statement(self) -> Select[Any]:
        """The page's SELECT: row columns, author joined, keyset-ordered, limit + 1."""
        column, kind = _SORT_COLUMNS[self.sort]
        descending = self.direction is SortDirection.DESC
        conditions = self._where()
        if self.cursor is not None:
            values = decode_cursor(self.cursor, self._cursor_key, (kind, str))
            conditions.append(after((column, App.__table__.c.id), values, descending=descending))
        order = (column.desc(), App.id.desc()) if descending else (column.asc(), App.id.asc())
        return (
            select(*_row_columns())
            .select_from(App)
            .outerjoin(User, User.id == App.user_id)
            .where(*conditions)
            .order_by(*order)
            .limit(self.limit + 1)
        )

    def count_statement(self) -> Select[int]:
        """How many apps match the scope and filters (cursor and limit ignored)."""
        return select(func.count(literal_column("1"))).select_from(App).where(*self._where())

    def fetch(self, session: Session) -> Page[AppRow]:
        rows = session.execute(self.statement()).all()
        items = [AppRow(**row._mapping) for row in rows[: self.limit]]
        has_more = len(rows) > self.limit
        next_cursor = None
        if has_more and items:
            last = items[-1]
            next_cursor = encode_cursor(self._cursor_key, [getattr(last, self.sort.value), last.id])
        return Page(items=items, next_cursor=next_cursor, has_more=has_more)

    def count(self, session: Session) -> int:
        return session.execute(self.count_statement()).scalar_one()
