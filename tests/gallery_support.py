"""Test data for the gallery and analytics tests, made directly through the models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from stich.apps.models import App, AppStatus, Visibility
from stich.db import Database
from stich.db.base import utcnow


def make_app(
    db: Database,
    user_id: str | None,
    *,
    title: str = "An app",
    description: str | None = "Made in a test",
    framework: str | None = "react",
    visibility: Visibility = Visibility.PUBLIC,
    status: AppStatus = AppStatus.READY,
    archived: bool = False,
    deleted: bool = False,
    created_at: datetime | None = None,
    anonymous_owner_hash: str | None = None,
    **counters: int,
) -> str:
    """An app owned by ``user_id`` (or an anonymous owner); public and ready by default."""
    created = created_at or utcnow()
    with db.write() as uow:
        app = App(
            title=title,
            description=description,
            framework=framework,
            user_id=user_id,
            anonymous_owner_hash=anonymous_owner_hash,
            visibility=visibility,
            status=status,
            is_archived=archived,
            deleted_at=created + timedelta(seconds=1) if deleted else None,
            created_at=created,
            updated_at=created,
            **counters,
        )
        uow.session.add(app)
        uow.session.flush()
        return app.id


def walk_feed(
    client: TestClient, headers: dict[str, str] | None = None, **params: Any
) -> list[str]:
    """Every app id of a feed listing, following cursors to the end."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get("/api/apps/public", params=query, headers=headers or {})
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        assert body["has_more"] is (cursor is not None)
        if cursor is None:
            return seen


def make_apps(db: Database, user_id: str | None, titles: list[str], **columns: Any) -> list[str]:
    """Many public, ready apps in one transaction (for plans that need some volume)."""
    now = utcnow()
    with db.write() as uow:
        apps = [
            App(
                title=title,
                user_id=user_id,
                visibility=Visibility.PUBLIC,
                status=AppStatus.READY,
                created_at=now,
                updated_at=now,
                **columns,
            )
            for title in titles
        ]
        uow.session.add_all(apps)
        uow.session.flush()
        return [app.id for app in apps]
