"""No feed walk lists an app twice, whatever happens between its pages: stars taken back
(through the API, or a recount lowering a counter), views added, edits, deletions and
restores — on every sort, live or on a ranking snapshot, on both backends."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update
from sqlalchemy.engine import Engine

from stich.analytics.models import AppDailyStats
from stich.apps.models import App
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery import rankings
from stich.gallery.feed import FeedPeriod, FeedSort, ranking_name
from tests.factories import SignedIn, make_user
from tests.gallery_support import make_app

Mutate = Callable[[list[str]], None]
LIVE_SORTS = [
    (FeedSort.POPULAR, FeedPeriod.ALL),
    (FeedSort.POPULAR, FeedPeriod.WEEK),
    (FeedSort.TRENDING, FeedPeriod.ALL),
]


def walk(client: TestClient, mutate: Mutate, **params: Any) -> list[str]:
    """Every app id of a walk with two apps a page, calling ``mutate(seen)`` between pages."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/apps/public", params=query)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return seen
        mutate(seen)


def assert_no_repeats(seen: list[str]) -> None:
    repeated = sorted({app_id for app_id in seen if seen.count(app_id) > 1})
    assert repeated == [], f"listed twice: {repeated} in {seen}"


class Gallery:
    """Apps with 5, 4, 3, 2, 1, 0 stars, each star given through the API."""

    def __init__(self, db: Database, client: TestClient) -> None:
        self.db, self.client = db, client
        self.owner = make_user(db)
        self.fans = [make_user(db) for _ in range(5)]
        self.apps = [make_app(self.db, self.owner.user_id, title=f"app {i}") for i in range(6)]
        for stars, app_id in zip(range(5, -1, -1), self.apps, strict=True):
            for fan in self.fans[:stars]:
                self.star(fan, app_id, "PUT")

    def star(self, fan: SignedIn, app_id: str, method: str, *, deleted_ok: bool = False) -> None:
        response = self.client.request(method, f"/api/apps/{app_id}/star", headers=fan.headers)
        expected = (200, 404) if deleted_ok else (200,)
        assert response.status_code in expected, response.text

    def withdraw_all_stars(self, app_id: str) -> None:
        for fan in self.fans:
            self.star(fan, app_id, "DELETE")


@pytest.mark.parametrize(("sort", "period"), LIVE_SORTS)
def test_stars_taken_back_never_list_an_app_twice(
    db: Database, client: TestClient, sort: FeedSort, period: FeedPeriod
) -> None:
    gallery = Gallery(db, client)

    def take_back_the_first_pages_stars(seen: list[str]) -> None:
        for app_id in seen[-2:]:
            gallery.withdraw_all_stars(app_id)

    seen = walk(client, take_back_the_first_pages_stars, sort=sort, period=period)
    assert_no_repeats(seen)
    # The demoted apps were listed before their stars went: nothing is left out either.
    assert sorted(seen) == sorted(gallery.apps)


def test_a_recount_lowering_counters_never_lists_an_app_twice(
    db: Database, client: TestClient
) -> None:
    """A counter lowered by any path (here raw SQL, as a repair would) counts too."""
    Gallery(db, client)
    for sort in (FeedSort.POPULAR, FeedSort.VIEWED):
        with db.write() as uow:
            uow.session.execute(update(App).values(view_count=App.star_count * 10))

        def recount(seen: list[str]) -> None:
            with db.write() as uow:
                uow.session.execute(
                    update(App).where(App.id.in_(seen)).values(star_count=0, view_count=0)
                )
                uow.session.execute(
                    update(AppDailyStats)
                    .where(AppDailyStats.app_id.in_(seen))
                    .values(stars=0, views=0)
                )

        assert_no_repeats(walk(client, recount, sort=sort, period=FeedPeriod.ALL))
        for period in (FeedPeriod.WEEK, FeedPeriod.ALL):
            assert_no_repeats(walk(client, recount, sort=FeedSort.TRENDING, period=period))
        Gallery(db, client)


def test_a_snapshot_walk_that_continues_live_never_lists_an_app_twice(
    db: Database, client: TestClient
) -> None:
    """The walk starts on a fresh snapshot; two rebuilds later its generation is gone and
    it goes on live, after the first page's apps lost their stars."""
    gallery = Gallery(db, client)
    name = ranking_name(FeedSort.POPULAR, FeedPeriod.WEEK)

    def rebuild() -> None:
        with db.write() as uow:
            rankings.refresh(uow.session, name, utcnow())

    rebuild()

    def take_back_and_rebuild_twice(seen: list[str]) -> None:
        for app_id in seen[-2:]:
            gallery.withdraw_all_stars(app_id)
        rebuild()
        rebuild()

    seen = walk(client, take_back_and_rebuild_twice, sort="popular", period="week")
    assert_no_repeats(seen)


@pytest.mark.parametrize("seed", [1, 2])
def test_any_mix_of_changes_between_pages_never_lists_an_app_twice(
    db: Database, client: TestClient, seed: int
) -> None:
    """Stars given and taken back, views added, edits, deletions and restores, at random
    between the pages of every sort and period."""
    gallery = Gallery(db, client)
    extra = [make_app(db, gallery.owner.user_id, title=f"more {i}") for i in range(4)]
    apps = gallery.apps + extra
    rng = random.Random(seed)

    def shake(_seen: list[str]) -> None:
        for _ in range(3):
            app_id, fan = rng.choice(apps), rng.choice(gallery.fans)
            change = rng.choice(["star", "unstar", "views", "edit", "delete", "restore"])
            if change in ("star", "unstar"):
                method = "PUT" if change == "star" else "DELETE"
                gallery.star(fan, app_id, method, deleted_ok=True)
            elif change == "views":
                _add_views(db, app_id, rng.randint(1, 30))
            else:
                _owner_change(client, gallery.owner, app_id, change)

    for sort in FeedSort:
        for period in (
            FeedPeriod if sort not in (FeedSort.RECENT, FeedSort.UPDATED) else [FeedPeriod.ALL]
        ):
            assert_no_repeats(walk(client, shake, sort=sort, period=period))


def _add_views(db: Database, app_id: str, views: int) -> None:
    """Views as the ingest applies them: the counter and today's rollup grow together."""
    today = utcnow().date()
    with db.write() as uow:
        uow.session.execute(
            update(App).where(App.id == app_id).values(view_count=App.view_count + views)
        )
        stats = uow.session.get(AppDailyStats, (app_id, today))
        if stats is None:
            uow.session.add(AppDailyStats(app_id=app_id, day=today, views=views))
        else:
            stats.views += views


def _owner_change(client: TestClient, owner: SignedIn, app_id: str, change: str) -> None:
    if change == "edit":
        response = client.patch(
            f"/api/apps/{app_id}",
            json={"title": f"edited {utcnow():%H%M%S%f}"},
            headers=owner.headers,
        )
    elif change == "delete":
        response = client.delete(f"/api/apps/{app_id}", headers=owner.headers)
    else:
        response = client.post(f"/api/apps/{app_id}/restore", headers=owner.headers)
    assert response.status_code < 500, response.text


def test_a_score_falling_to_zero_within_one_page_lists_the_app_once(
    db: Database, client: TestClient
) -> None:
    """A live windowed page reads its ranked apps, then the score-0 tail, in two
    statements; on PostgreSQL each reads afresh, so an app whose stars go in between
    would be in both."""
    gallery = Gallery(db, client)
    target = gallery.apps[0]
    fired: list[str] = []

    def take_back_after_the_ranked_apps(*args: Any) -> None:
        statement = args[2]
        if fired or "scores" not in statement:
            return
        fired.append(statement)
        with db.write() as uow:
            uow.session.execute(update(App).where(App.id == target).values(star_count=0))
            uow.session.execute(
                update(AppDailyStats).where(AppDailyStats.app_id == target).values(stars=0)
            )

    event.listen(Engine, "after_cursor_execute", take_back_after_the_ranked_apps)
    try:
        response = client.get("/api/apps/public", params={"sort": "popular", "period": "week"})
    finally:
        event.remove(Engine, "after_cursor_execute", take_back_after_the_ranked_apps)
    assert fired
    seen = [item["id"] for item in response.json()["items"]]
    assert_no_repeats(seen)
