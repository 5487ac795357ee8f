"""Stars and favorites: idempotent toggles, counters and rollups, who may, "my" lists."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from stich.analytics.models import AppDailyStats
from stich.apps.models import App, Visibility
from stich.auth.principal import Principal
from stich.db import Database
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from stich.users.models import Role
from tests.factories import anonymous_token, make_user
from tests.gallery_support import make_app


def _counts(db: Database, app_id: str) -> tuple[int, int]:
    with db.read() as uow:
        app = uow.session.get_one(App, app_id)
        return app.star_count, app.favorite_count


def _daily_stars(db: Database, app_id: str) -> dict[date, int]:
    with db.read() as uow:
        rows = uow.session.execute(
            select(AppDailyStats.day, AppDailyStats.stars).where(AppDailyStats.app_id == app_id)
        )
        return {day: stars for day, stars in rows if stars}


def test_starring_is_idempotent_and_moves_the_counters_once(
    client: TestClient, db: Database
) -> None:
    alice, bob = make_user(db), make_user(db)
    app_id = make_app(db, alice.user_id)
    url = f"/api/apps/{app_id}/star"
    for _ in range(2):
        response = client.put(url, headers=bob.headers)
        assert response.status_code == 200
        assert response.json() == {"starred": True, "star_count": 1}
    assert _counts(db, app_id) == (1, 0)
    assert sum(_daily_stars(db, app_id).values()) == 1
    assert client.put(url, headers=alice.headers).json() == {"starred": True, "star_count": 2}
    for _ in range(2):
        response = client.delete(url, headers=bob.headers)
        assert response.json() == {"starred": False, "star_count": 1}
    assert _counts(db, app_id) == (1, 0)
    assert sum(_daily_stars(db, app_id).values()) == 1


def test_favorites_are_idempotent_and_leave_the_star_rollup_alone(
    client: TestClient, db: Database
) -> None:
    alice, bob = make_user(db), make_user(db)
    app_id = make_app(db, alice.user_id)
    url = f"/api/apps/{app_id}/favorite"
    for _ in range(2):
        assert client.put(url, headers=bob.headers).json() == {
            "favorited": True,
            "favorite_count": 1,
        }
    assert _counts(db, app_id) == (0, 1)
    assert _daily_stars(db, app_id) == {}
    for _ in range(2):
        assert client.delete(url, headers=bob.headers).json() == {
            "favorited": False,
            "favorite_count": 0,
        }
    assert _counts(db, app_id) == (0, 0)


def test_taking_a_star_back_subtracts_from_the_day_it_was_given(db: Database) -> None:
    alice, bob = make_user(db), make_user(db)
    app_id = make_app(db, alice.user_id)
    monday = datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC)
    with db.write() as uow:
        GalleryService(uow.session, clock=lambda: monday).react(
            Reaction.STAR, Principal.user(bob.user_id), app_id, on=True
        )
    assert _daily_stars(db, app_id) == {date(2026, 6, 1): 1}
    with db.write() as uow:
        GalleryService(uow.session, clock=lambda: monday + timedelta(days=2)).react(
            Reaction.STAR, Principal.user(bob.user_id), app_id, on=False
        )
    assert _daily_stars(db, app_id) == {}
    assert _counts(db, app_id) == (0, 0)


@pytest.mark.parametrize("kind", ["star", "favorite"])
def test_only_apps_the_actor_can_see(client: TestClient, db: Database, kind: str) -> None:
    alice, bob = make_user(db), make_user(db)
    admin = make_user(db, role=Role.ADMIN)
    private = make_app(db, alice.user_id, visibility=Visibility.PRIVATE)
    deleted = make_app(db, alice.user_id, deleted=True)
    public = make_app(db, alice.user_id)
    for method in (client.put, client.delete):
        for app_id in (private, deleted, "no-such-app"):
            response = method(f"/api/apps/{app_id}/{kind}", headers=bob.headers)
            assert response.status_code == 404, (method, app_id)
            assert response.json()["error"]["code"] == "app_not_found"
    assert _counts(db, private) == (0, 0)
    # Its owner and admins can see it, so they may.
    assert client.put(f"/api/apps/{private}/{kind}", headers=alice.headers).status_code == 200
    assert client.put(f"/api/apps/{private}/{kind}", headers=admin.headers).status_code == 200
    assert client.put(f"/api/apps/{deleted}/{kind}", headers=alice.headers).status_code == 404
    # Accounts only: an anonymous visitor or no credentials is 401.
    token, _ = anonymous_token()
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        assert client.put(f"/api/apps/{public}/{kind}", headers=headers).status_code == 401


@pytest.mark.parametrize(("kind", "listing"), [("star", "stars"), ("favorite", "favorites")])
def test_my_list_is_newest_first_keyset_paged_and_only_visible(
    client: TestClient, db: Database, kind: str, listing: str
) -> None:
    alice, bob = make_user(db), make_user(db)
    apps = [make_app(db, alice.user_id, title=f"app {n}") for n in range(5)]
    for app_id in apps:
        assert client.put(f"/api/apps/{app_id}/{kind}", headers=bob.headers).status_code == 200
    with db.write() as uow:  # one goes private: bob may no longer see it
        uow.session.execute(
            update(App).where(App.id == apps[1]).values(visibility=Visibility.PRIVATE)
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/api/me/{listing}", params=params, headers=bob.headers).json()
        seen += [item["app"]["id"] for item in body["items"]]
        assert all(
            item["app"]["starred" if kind == "star" else "favorited"] for item in body["items"]
        )
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [apps[4], apps[3], apps[2], apps[0]]
    assert client.get(f"/api/me/{listing}", headers=alice.headers).json()["items"] == []
    assert client.get(f"/api/me/{listing}").status_code == 401
    bad = client.get(f"/api/me/{listing}", params={"cursor": "garbage"}, headers=bob.headers)
    assert bad.status_code == 422
    first = client.get(f"/api/me/{listing}", params={"limit": 1}, headers=bob.headers).json()
    crossed = client.get("/api/apps/public", params={"cursor": first["next_cursor"]})
    assert crossed.status_code == 422  # a cursor only pages the listing that issued it


def test_api_keys_need_apps_write_to_star_and_apps_read_to_look(
    client: TestClient, db: Database
) -> None:
    alice, bob = make_user(db), make_user(db)
    app_id = make_app(db, alice.user_id)

    def key(scopes: list[str]) -> dict[str, str]:
        response = client.post(
            "/api/keys", json={"name": "bot", "scopes": scopes}, headers=bob.headers
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    reader, writer, secrets_only = (
        key(["apps:read"]),
        key(["apps:read", "apps:write"]),
        key(["secrets:read"]),
    )
    refused = client.put(f"/api/apps/{app_id}/star", headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert client.put(f"/api/apps/{app_id}/star", headers=writer).json()["starred"] is True
    assert client.get("/api/me/stars", headers=reader).status_code == 200
    assert client.get("/api/apps/public", headers=reader).status_code == 200
    assert client.post(f"/api/apps/{app_id}/views", headers=reader).status_code == 202
    assert client.get("/api/me/stats", headers=reader).status_code == 200
    for path in ("/api/apps/public", "/api/me/stars", "/api/me/stats"):
        assert client.get(path, headers=secrets_only).status_code == 403, path
