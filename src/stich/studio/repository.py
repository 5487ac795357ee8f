"""The Studio's own SQL: the admin's sign-in, and the rows its manage pages show."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from stich.apps.models import App
from stich.auth.models import UserSession
from stich.users.models import User


class StudioRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def session_with_user(self, session_id: str) -> tuple[UserSession, User] | None:
        """A sign-in session and its account, whatever their state (the caller judges)."""
        row = self.session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.id == session_id)
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def account(self, user_id: str) -> User | None:
        return self.session.get(User, user_id)

    def app(self, app_id: str) -> App | None:
        """Any app by id, deleted or not (the caller is an admin)."""
        return self.session.get(App, app_id)
