"""Private, archived, deleted and unfinished apps appear in no feed, search, profile, star,
view or analytics answer for anyone but their owner; and public profiles."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from stich.apps.models import App, AppStatus, Visibility
from stich.db import Database
from stich.users.models import Role, User
from tests.factories import SignedIn, anonymous_token, make_user
from tests.gallery_support import make_app, walk_feed
from tests.views_support import flush_views

HIDDEN: dict[str, dict[str, Any]] = {
    "private": {"visibility": Visibility.PRIVATE},
    "archived": {"archived": True},
    "deleted": {"deleted": True},
    "draft": {"status": AppStatus.DRAFT},
    "generating": {"status": AppStatus.GENERATING},
    "error": {"status": AppStatus.ERROR},
}


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    alice, bob = make_user(db, name="alice"), make_user(db, name="bob")
    admin = make_user(db, role=Role.ADMIN)
    hidden = {
        name: make_app(db, alice.user_id, title=f"secret {name}", **columns)
        for name, columns in HIDDEN.items()
    }
    shown = make_app(db, alice.user_id, title="secret but public")
    token, _ = anonymous_token()
    return {
        "alice": alice,
        "bob": bob,
        "admin": admin,
        "hidden": hidden,
        "shown": shown,
        "anonymous": {"Authorization": f"Bearer {token}"},
    }


def _everyone(world: dict[str, Any]) -> list[dict[str, str]]:
    people: list[SignedIn] = [world["alice"], world["bob"], world["admin"]]
    return [{}, world["anonymous"], *(p.headers for p in people)]


def test_feeds_and_searches_never_list_them(client: TestClient, world: dict[str, Any]) -> None:
    for headers in _everyone(world):
        for sort in ("recent", "updated", "popular", "viewed", "trending"):
            for period in ("today", "all"):
                listed = walk_feed(client, headers, sort=sort, period=period, limit=3)
                assert listed == [world["shown"]], (sort, period)
        found = walk_feed(client, headers, q="secret")
        assert found == [world["shown"]]
        assert client.get("/api/apps/public", params={"q": "secret"}).json()["total"] == 1


def test_profiles_show_public_apps_only(client: TestClient, world: dict[str, Any]) -> None:
    for headers in _everyone(world):
        body = client.get("/api/users/alice", headers=headers).json()
        assert [app["id"] for app in body["apps"]["items"]] == [world["shown"]]
        assert body["stats"]["public_apps"] == 1


def test_no_one_but_the_owner_may_star_view_or_read_analytics(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    alice, bob = world["alice"], world["bob"]
    strangers = [{}, world["anonymous"], bob.headers]
    for name, app_id in world["hidden"].items():
        for headers in strangers:
            for method, path in (
                (client.put, "star"),
                (client.delete, "star"),
                (client.put, "favorite"),
                (client.delete, "favorite"),
            ):
                status = method(f"/api/apps/{app_id}/{path}", headers=headers).status_code
                assert status in (401, 404), (name, path)
            views = client.post(f"/api/apps/{app_id}/views", headers=headers)
            assert views.status_code == 404, name
            analytics = client.get(f"/api/apps/{app_id}/analytics", headers=headers)
            assert analytics.status_code in (401, 404), name
        # The owner sees its live apps (but they never count views); deleted is gone.
        expected = 404 if name == "deleted" else 200
        assert client.put(f"/api/apps/{app_id}/star", headers=alice.headers).status_code == expected
        own_view = client.post(f"/api/apps/{app_id}/views", headers=alice.headers)
        assert own_view.status_code == (202 if expected == 200 else 404)
        flush_views(client)
        if expected == 200:  # queued, but an app outside the gallery never counts a view
            assert _view_count(db, app_id) == 0
        owner_analytics = client.get(f"/api/apps/{app_id}/analytics", headers=alice.headers)
        assert owner_analytics.status_code == expected
    assert (
        client.get(f"/api/apps/{world['shown']}/analytics", headers=bob.headers).status_code == 403
    )


def test_an_app_that_goes_private_leaves_my_stars(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    bob, shown = world["bob"], world["shown"]
    assert client.put(f"/api/apps/{shown}/star", headers=bob.headers).status_code == 200
    assert client.put(f"/api/apps/{shown}/favorite", headers=bob.headers).status_code == 200
    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == shown).values(is_archived=True))
    for listing in ("stars", "favorites"):
        assert client.get(f"/api/me/{listing}", headers=bob.headers).json()["items"] == []
    # ...and bob can no longer touch it (or learn its count).
    assert client.delete(f"/api/apps/{shown}/star", headers=bob.headers).status_code == 404


def test_profile_pages_and_unknown_or_suspended_users(client: TestClient, db: Database) -> None:
    carol = make_user(db, name="carol")
    apps = [make_app(db, carol.user_id, star_count=n, view_count=2 * n) for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/users/Carol", params=params).json()
        seen += [app["id"] for app in body["apps"]["items"]]
        cursor = body["apps"]["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(apps))
    assert body["user"]["username"] == "carol" and "email" not in body["user"]
    assert body["stats"] == {"public_apps": 5, "stars_received": 10, "views_received": 20}
    assert client.get("/api/users/nobody-here").status_code == 404
    with db.write() as uow:
        uow.session.execute(update(User).where(User.id == carol.user_id).values(is_suspended=True))
    assert client.get("/api/users/carol").status_code == 404
    assert client.get("/api/users/carol", params={"cursor": "zzz"}).status_code in (404, 422)


def _view_count(db: Database, app_id: str) -> int:
    with db.read("fresh") as uow:
        return uow.session.get_one(App, app_id).view_count
