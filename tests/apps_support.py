"""Test data for the apps tests, made directly through the models (not the services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import AuditLog
from stich.auth.anonymous import mint_anonymous_token
from stich.db import Database
from tests.factories import SignedIn, hasher


@dataclass
class Anonymous:
    token: str
    owner_hash: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_anonymous() -> Anonymous:
    """An anonymous visitor holding a genuine token (as POST /auth/anonymous issues)."""
    token = mint_anonymous_token(hasher)
    return Anonymous(token=token, owner_hash=hasher.token_hash(token))


Owner = SignedIn | Anonymous


def make_app(
    db: Database,
    owner: Owner,
    *,
    title: str = "An app",
    status: AppStatus = AppStatus.READY,
    visibility: Visibility = Visibility.PUBLIC,
    **columns: Any,
) -> str:
    """Insert an app owned by a user or an anonymous visitor; returns its id."""
    ownership: dict[str, Any] = (
        {"user_id": owner.user_id}
        if isinstance(owner, SignedIn)
        else {"anonymous_owner_hash": owner.owner_hash}
    )
    with db.write() as uow:
        app = App(title=title, status=status, visibility=visibility, **ownership, **columns)
        uow.session.add(app)
        uow.session.flush()
        return app.id


def load_app(db: Database, app_id: str) -> App | None:
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        if app is not None:
            uow.session.expunge(app)  # keep its loaded values after the read ends
        return app


def set_columns(db: Database, app_id: str, **values: Any) -> None:
    with db.write() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None
        for name, value in values.items():
            setattr(app, name, value)


def audit_entries(db: Database, action: str, resource_id: str) -> list[AuditLog]:
    with db.read() as uow:
        entries = list(
            uow.session.scalars(
                select(AuditLog)
                .where(AuditLog.action == action, AuditLog.resource_id == resource_id)
                .order_by(AuditLog.created_at, AuditLog.id)
            )
        )
        uow.session.expunge_all()
        return entries


def live_fork_count(db: Database, parent_id: str) -> int:
    """The recount ``fork_count`` must agree with: live forks of the parent."""
    with db.read() as uow:
        return uow.session.execute(
            select(func.count())
            .select_from(App)
            .where(App.parent_app_id == parent_id, App.deleted_at.is_(None))
        ).scalar_one()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
