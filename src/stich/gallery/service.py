"""Gallery rules: stars and favorites, the public feed, "my stars", public profiles.

Stars and favorites belong to accounts and may be given only to apps the account can
see; anyone else's private app is 404, exactly as if it did not exist. A toggle is
idempotent: its event row, the app's counter and (for stars) the day's rollup change
together in the caller's transaction, and only when the state really changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from stich.auth.principal import Principal
from stich.db.base import utcnow
from stich.db.pagination import Page
from stich.errors import NotFound, Unauthorized
from stich.gallery.feed import (
    DEFAULT_RANKING_MAX_AGE,
    FeedPage,
    FeedQuery,
    FeedRequest,
    GalleryRow,
)
from stich.gallery.repository import (
    GalleryRepository,
    ProfileTotals,
    ProfileUser,
    ReactedRow,
    Reaction,
)

Clock = Callable[[], datetime]


def app_not_found() -> NotFound:
    return NotFound("no such app", code="app_not_found")


@dataclass(frozen=True)
class ReactionState:
    active: bool
    count: int


@dataclass(frozen=True)
class Profile:
    user: ProfileUser
    totals: ProfileTotals
    apps: Page[GalleryRow]


class GalleryService:
    def __init__(
        self,
        session: Session,
        *,
        clock: Clock = utcnow,
        ranking_max_age: timedelta = DEFAULT_RANKING_MAX_AGE,
    ) -> None:
        self.repo = GalleryRepository(session)
        self.session = session
        self.clock = clock
        self.ranking_max_age = ranking_max_age

    # -- stars and favorites -----------------------------------------------------------

    def react(
        self, reaction: Reaction, principal: Principal, app_id: str, *, on: bool
    ) -> ReactionState:
        """Star / favorite (``on``) or take it back; a no-op when already in that state."""
        user_id = _account(principal)
        app = self.repo.visible_app(app_id, principal)
        if app is None:
            raise app_not_found()
        if on:
            changed = self._add(reaction, user_id, app.id)
        else:
            changed = self._remove(reaction, user_id, app.id)
        count = changed if changed is not None else app.count(reaction)
        return ReactionState(active=on, count=count)

    def _add(self, reaction: Reaction, user_id: str, app_id: str) -> int | None:
        now = self.clock()
        if not self.repo.add_event(reaction, user_id, app_id, now):
            return None
        count = self.repo.add_to_counter(reaction, app_id, +1)
        if reaction is Reaction.STAR:
            self.repo.add_daily_stars(app_id, now.astimezone(UTC).date(), +1)
        return count

    def _remove(self, reaction: Reaction, user_id: str, app_id: str) -> int | None:
        given_at = self.repo.remove_event(reaction, user_id, app_id)
        if given_at is None:
            return None
        # None only if the counter had already drifted to 0; `stich db verify` repairs it.
        count = self.repo.add_to_counter(reaction, app_id, -1)
        if reaction is Reaction.STAR:
            self.repo.add_daily_stars(app_id, given_at.astimezone(UTC).date(), -1)
        return count if count is not None else 0

    def reacted(
        self, reaction: Reaction, principal: Principal, *, limit: int, cursor: str | None
    ) -> Page[ReactedRow]:
        _account(principal)
        return self.repo.reacted_page(reaction, principal, limit, cursor)

    # -- feed and profiles -------------------------------------------------------------

    def feed(
        self,
        request: FeedRequest,
        principal: Principal | None,
        *,
        today: date | None = None,
        bounded_only: bool = False,
    ) -> FeedPage:
        """A page of the feed (``bounded_only``: see :class:`FeedQuery`)."""
        viewer_id = principal.user_id if principal is not None and principal.is_user else None
        query = FeedQuery(
            self.session,
            request,
            viewer_id,
            ranking_max_age=self.ranking_max_age,
            bounded_only=bounded_only,
        )
        now = self.clock().astimezone(UTC)
        return query.page(today or now.date(), now)

    def profile(
        self, username: str, principal: Principal | None, *, limit: int, cursor: str | None
    ) -> Profile:
        user = self.repo.profile_user(username)
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        viewer_id = principal.user_id if principal is not None and principal.is_user else None
        return Profile(
            user=user,
            totals=self.repo.profile_totals(user.id),
            apps=self.repo.profile_apps(user.id, viewer_id, limit, cursor),
        )


def _account(principal: Principal) -> str:
    if not principal.is_user or principal.user_id is None:
        raise Unauthorized("stars and favorites need a signed-in account", code="account_required")
    return principal.user_id
