"""The one visibility rule: who may see an app.

An app is *publicly visible* when it is public, not archived, not deleted and ready or
deployed (the gallery's predicate). Anyone else's app is visible only to its owner (a
user, or the anonymous visitor holding its token) and to admins; everybody else gets
404, never 403. Deleted apps are visible to nobody through reads (restore is separate).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, literal_column, or_, true

from stich.apps.models import App, AppStatus, Visibility
from stich.auth.principal import Principal, PrincipalKind

PUBLIC_STATUSES = (AppStatus.READY, AppStatus.DEPLOYED)


def publicly_visible() -> ColumnElement[bool]:
    return and_(
        App.visibility == Visibility.PUBLIC,
        App.is_archived.is_(False),
        App.deleted_at.is_(None),
        App.status.in_(PUBLIC_STATUSES),
    )


def owned_by(principal: Principal | None) -> ColumnElement[bool]:
    """Apps the principal owns (including soft-deleted ones; callers add liveness)."""
    if principal is None:
        return false()
    if principal.kind is PrincipalKind.ANONYMOUS and principal.anonymous_owner_hash:
        return App.anonymous_owner_hash == principal.anonymous_owner_hash
    if principal.user_id is not None:
        return App.user_id == principal.user_id
    return false()


def visible_to(principal: Principal | None) -> ColumnElement[bool]:
    """Live apps the principal may read."""
    if principal is not None and principal.is_admin:
        return App.deleted_at.is_(None)
    return or_(publicly_visible(), and_(owned_by(principal), App.deleted_at.is_(None)))


def managed_by(principal: Principal | None) -> ColumnElement[bool]:
    """Apps the principal may manage, soft-deleted ones included (for restore): its own,
    or any app for admins. Non-owners of a deleted app get 404 like everyone else."""
    if principal is not None and principal.is_admin:
        return true()
    return owned_by(principal)


def listed_in_feed() -> ColumnElement[bool]:
    """:func:`publicly_visible`, spelled with literals exactly like ``FEED_PREDICATE``.

    Same rows, but written so both planners match the gallery's partial indexes: bound
    parameters (and SQLite's ``is_archived = 0`` / ``IS 0``) do not imply the index's
    ``visibility = 'public' AND is_archived = false ...``, this does. Column names stay
    qualified, so it composes with joins (``users`` has a ``deleted_at`` too).
    """
    return and_(
        App.visibility == literal_column(f"'{Visibility.PUBLIC.value}'"),
        App.is_archived == literal_column("false"),
        App.deleted_at.is_(None),
        App.status.in_([literal_column(f"'{status.value}'") for status in PUBLIC_STATUSES]),
    )


def can_manage(app: App, principal: Principal | None) -> bool:
    """May change the app (edit, delete, restore, status, visibility, transfer)."""
    return principal is not None and (principal.is_admin or is_owner(app, principal))


def is_owner(app: App, principal: Principal | None) -> bool:
    if principal is None:
        return False
    if principal.kind is PrincipalKind.ANONYMOUS:
        return app.anonymous_owner_hash is not None and (
            app.anonymous_owner_hash == principal.anonymous_owner_hash
        )
    return app.user_id is not None and app.user_id == principal.user_id
