"""A gallery row: the public-safe columns of an app, its author and the viewer's flags.

Shared by the feed (``stich.gallery.feed``) and the other gallery listings (my stars,
profiles): one ``SELECT`` of columns, never entities, read into named tuples by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    TextClause,
    and_,
    exists,
    or_,
    select,
)
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import Subquery

from stich.apps.models import App
from stich.gallery.models import Favorite, Star
from stich.users.models import User

Column = SQLColumnExpression[Any]
Criterion = ColumnElement[bool] | TextClause


class GalleryRow(NamedTuple):
    """One app as the gallery shows it: public-safe columns, author, counts, viewer flags.

    A named tuple, not a dataclass: pages build thousands of these a second, and a tuple
    is built from a row by position at a fifth of a frozen dataclass's cost.
    """

    id: str
    title: str
    description: str | None
    icon: str | None
    framework: str | None
    screenshot_url: str | None
    deployment_url: str | None
    created_at: datetime
    updated_at: datetime
    star_count: int
    view_count: int
    fork_count: int
    favorite_count: int
    author_username: str | None
    author_display_name: str | None
    author_avatar_url: str | None
    starred: bool | None = None
    favorited: bool | None = None
    score: int | None = None


APP_COLUMNS = (
    App.id,
    App.title,
    App.description,
    App.icon,
    App.framework,
    App.screenshot_url,
    App.deployment_url,
    App.created_at,
    App.updated_at,
    App.star_count,
    App.view_count,
    App.fork_count,
    App.favorite_count,
)


def _authors() -> Subquery:
    # Only author_* names leave this subquery, so the unqualified column names of
    # FEED_PREDICATE (deleted_at, status, ...) still resolve to apps alone.
    return (
        select(
            User.id.label("author_id"),
            User.username.label("author_username"),
            User.display_name.label("author_display_name"),
            User.avatar_url.label("author_avatar_url"),
        )
        .select_from(User)
        .subquery("authors")
    )


def item_columns(authors: Subquery, viewer: str | BindParameter[str] | None) -> list[Any]:
    """The columns of a :class:`GalleryRow`, in its field order; with a viewer (an id, or
    a bound parameter for one), its star/favorite flags too."""
    columns: list[Any] = [
        *APP_COLUMNS,
        authors.c.author_username,
        authors.c.author_display_name,
        authors.c.author_avatar_url,
    ]
    if viewer is not None:
        columns.append(
            exists()
            .where(Star.user_id == viewer, Star.app_id == App.id)
            .correlate_except(Star)  # "my stars" joins stars itself
            .label("starred")
        )
        columns.append(
            exists()
            .where(Favorite.user_id == viewer, Favorite.app_id == App.id)
            .correlate_except(Favorite)
            .label("favorited")
        )
    return columns


# Built once: constructing the subquery and its join is a third of a feed page's Python
# time, and both are immutable, so every statement can share them.
_AUTHORS = _authors()
_APPS_WITH_AUTHORS = App.__table__.outerjoin(_AUTHORS, _AUTHORS.c.author_id == App.user_id)
_ANONYMOUS_COLUMNS = item_columns(_AUTHORS, None)
ITEM_WIDTH = len(_ANONYMOUS_COLUMNS)


def gallery_select(viewer: str | BindParameter[str] | None, *extra: Any) -> Select[Any]:
    """``SELECT`` item columns ``FROM apps LEFT JOIN authors``; callers add the rest.

    The row is ``GalleryRow``'s fields in order, then ``starred`` and ``favorited`` when
    there is a viewer, then ``extra``: see :func:`to_row`.
    """
    columns = _ANONYMOUS_COLUMNS if viewer is None else item_columns(_AUTHORS, viewer)
    return select(*columns, *extra).select_from(_APPS_WITH_AUTHORS)


def to_row(row: Sequence[Any], *, viewer: bool, score: int | None = None) -> GalleryRow:
    """A :class:`GalleryRow` from a row of :func:`gallery_select` (by position)."""
    if viewer:
        flags = [bool(row[ITEM_WIDTH]), bool(row[ITEM_WIDTH + 1])]
        return GalleryRow._make([*row[:ITEM_WIDTH], *flags, score])
    return GalleryRow._make([*row[:ITEM_WIDTH], None, None, score])


def descending_after(columns: list[Column], values: list[Any]) -> ColumnElement[bool]:
    """Rows after ``values`` in ``ORDER BY columns DESC``, with a redundant bound on the
    leading column so every planner starts its index range there (page 200 costs what
    page 1 does)."""
    clauses: list[ColumnElement[bool]] = []
    for i, column in enumerate(columns):
        equal_prefix = [columns[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal_prefix, column < values[i]))
    return and_(columns[0] <= values[0], or_(*clauses))
