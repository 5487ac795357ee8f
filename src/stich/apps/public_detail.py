"""``GET /apps/{id}`` for a caller without credentials: one compiled statement, no ORM.

The busiest read of all. Anonymous callers may see exactly the publicly visible apps, so
the predicate is the feed's (``visibility.listed_in_feed()``, which is
``visible_to(None)`` spelled for the partial indexes), and the public view needs only the
columns it shows: they are selected by name, with the author's, in a statement compiled
once per dialect (:mod:`stich.db.compiled`) instead of building it and loading an ``App``
entity on every request (about a third of a millisecond; docs/benchmarks.md, HTTP).
Signed-in callers go through ``AppService.get``, which also serves owners and admins.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from stich.apps import visibility
from stich.apps.models import App
from stich.apps.schemas import PUBLIC_FIELDS, AppPublic, Author, public_view
from stich.db.compiled import CompiledSelect
from stich.users.models import User

_NAMES = tuple(sorted(PUBLIC_FIELDS))
_PUBLIC_APP = CompiledSelect(
    select(
        *(App.__table__.c[name] for name in _NAMES),
        User.id,
        User.username,
        User.display_name,
        User.avatar_url,
    )
    .select_from(App)
    .outerjoin(User, User.id == App.user_id)
    .where(App.id == bindparam("app_id"), visibility.listed_in_feed())
)


def find_public_app(session: Session, app_id: str) -> AppPublic | None:
    """The public view of the app if anyone may read it, else None."""
    rows = _PUBLIC_APP.rows(session, {"app_id": app_id})
    if not rows:
        return None
    row = rows[0]
    width = len(_NAMES)
    author_id, username, display_name, avatar_url = row[width:]
    author = None
    if author_id is not None:
        author = Author(
            id=author_id, username=username, display_name=display_name, avatar_url=avatar_url
        )
    return public_view(dict(zip(_NAMES, row[:width], strict=True)), author)
