"""The public feed: what it lists, its sorts and periods, totals, search, plans, queries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyStats
from stich.apps.models import FEED_PREDICATE, App, AppStatus, Visibility
from stich.auth.principal import Principal
from stich.db import Database
from stich.db.base import utcnow
from stich.db.compiled import CompiledSelect
from stich.db.instrumentation import track_queries
from stich.gallery import feed, rankings
from stich.gallery.feed import FeedPeriod, FeedQuery, FeedRequest, FeedSort
from stich.gallery.service import GalleryService
from tests.factories import anonymous_token, make_user
from tests.gallery_support import make_app, make_apps, walk_feed

TODAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 12, tzinfo=UTC)


def _ids(body: dict[str, object]) -> list[str]:
    items = body["items"]
    assert isinstance(items, list)
    return [item["id"] for item in items]


def _add_daily(db: Database, app_id: str, day: date, *, stars: int = 0, views: int = 0) -> None:
    with db.write() as uow:
        uow.session.add(
            AppDailyStats(app_id=app_id, day=day, stars=stars, views=views, unique_viewers=views)
        )


def _feed(db: Database, viewer_id: str | None = None, **request: Any) -> list[str]:
    """Every id of a listing through the service, on a fixed day, in small pages."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        with db.read() as uow:
            page = FeedQuery(
                uow.session, FeedRequest(limit=2, cursor=cursor, **request), viewer_id
            ).page(TODAY)
        seen += [row.id for row in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


def test_only_public_live_ready_or_deployed_apps_are_listed(
    client: TestClient, db: Database
) -> None:
    alice, bob = make_user(db), make_user(db)
    ready = make_app(db, alice.user_id, title="ready")
    deployed = make_app(db, alice.user_id, title="deployed", status=AppStatus.DEPLOYED)
    for hidden in (
        {"visibility": Visibility.PRIVATE},
        {"archived": True},
        {"deleted": True},
        {"status": AppStatus.DRAFT},
        {"status": AppStatus.GENERATING},
        {"status": AppStatus.ERROR},
    ):
        make_app(db, alice.user_id, title="hidden", **hidden)
    anonymous, _ = anonymous_token()
    for headers in (None, alice.headers, bob.headers, {"Authorization": f"Bearer {anonymous}"}):
        body = client.get("/api/apps/public", headers=headers or {}).json()
        assert _ids(body) == [deployed, ready]
        assert body["total"] == 2 and body["total_exact"] is True
        assert body["has_more"] is False and body["next_cursor"] is None


def test_items_carry_author_counts_and_the_viewers_own_flags(
    client: TestClient, db: Database
) -> None:
    alice, bob = make_user(db), make_user(db)
    _, owner_hash = anonymous_token()
    made_by_alice = make_app(db, alice.user_id, star_count=0, fork_count=3)
    made_anonymously = make_app(db, None, anonymous_owner_hash=owner_hash)
    assert client.put(f"/api/apps/{made_by_alice}/star", headers=bob.headers).status_code == 200

    items = {
        i["id"]: i for i in client.get("/api/apps/public", headers=bob.headers).json()["items"]
    }
    mine = items[made_by_alice]
    assert mine["author"] == {
        "username": alice.username,
        "display_name": alice.username.title(),
        "avatar_url": None,
    }
    assert (mine["star_count"], mine["fork_count"], mine["starred"], mine["favorited"]) == (
        1,
        3,
        True,
        False,
    )
    assert items[made_anonymously]["author"] is None
    assert items[made_anonymously]["starred"] is False
    signed_out = client.get("/api/apps/public").json()["items"]
    assert {(i["starred"], i["favorited"]) for i in signed_out} == {(None, None)}
    # Never a field that only owners may see.
    assert not {"original_prompt", "final_prompt", "anonymous_owner_hash", "blueprint"} & set(mine)


def test_counter_sorts_order_by_value_then_id(db: Database) -> None:
    alice = make_user(db)
    same_time = NOON - timedelta(days=1)
    a = make_app(db, alice.user_id, created_at=same_time, star_count=2, view_count=1)
    b = make_app(db, alice.user_id, created_at=same_time, star_count=2, view_count=5)
    c = make_app(db, alice.user_id, created_at=NOON, star_count=7, view_count=1)
    tie = sorted([a, b], reverse=True)
    assert _feed(db, sort=FeedSort.RECENT) == [c, *tie]
    assert _feed(db, sort=FeedSort.POPULAR) == [c, *tie]
    assert _feed(db, sort=FeedSort.VIEWED) == [b, *sorted([a, c], reverse=True)]
    with db.write() as uow:
        uow.session.execute(
            update(App).where(App.id == a).values(updated_at=NOON + timedelta(hours=1))
        )
    assert _feed(db, sort=FeedSort.UPDATED) == [a, c, b]


def test_period_sorts_count_only_their_window(db: Database) -> None:
    alice = make_user(db)
    old = make_app(db, alice.user_id, created_at=NOON - timedelta(days=60), star_count=9)
    fresh = make_app(db, alice.user_id, created_at=NOON - timedelta(days=50), star_count=1)
    weekly = make_app(db, alice.user_id, created_at=NOON - timedelta(days=40), star_count=2)
    quiet = make_app(db, alice.user_id, created_at=NOON - timedelta(days=30))
    _add_daily(db, old, TODAY - timedelta(days=20), stars=9, views=1)
    _add_daily(db, weekly, TODAY - timedelta(days=6), stars=2, views=50)
    _add_daily(db, fresh, TODAY, stars=1, views=3)
    # No activity in the window: the rest of the feed, newest first, after the scored apps.
    assert _feed(db, sort=FeedSort.POPULAR, period=FeedPeriod.TODAY) == [fresh, quiet, weekly, old]
    assert _feed(db, sort=FeedSort.POPULAR, period=FeedPeriod.WEEK) == [weekly, fresh, quiet, old]
    assert _feed(db, sort=FeedSort.POPULAR, period=FeedPeriod.MONTH) == [old, weekly, fresh, quiet]
    assert _feed(db, sort=FeedSort.POPULAR, period=FeedPeriod.ALL) == [old, weekly, fresh, quiet]
    assert _feed(db, sort=FeedSort.VIEWED, period=FeedPeriod.WEEK) == [weekly, fresh, quiet, old]


def test_trending_decays_with_age(db: Database) -> None:
    alice = make_user(db)
    month_old_stars = make_app(db, alice.user_id, created_at=NOON - timedelta(days=3))
    todays_views = make_app(db, alice.user_id, created_at=NOON - timedelta(days=2))
    mixed = make_app(db, alice.user_id, created_at=NOON - timedelta(days=1))
    _add_daily(db, month_old_stars, TODAY - timedelta(days=29), stars=50)
    _add_daily(db, todays_views, TODAY, views=9)
    _add_daily(db, mixed, TODAY, stars=1)
    _add_daily(db, mixed, TODAY - timedelta(days=1), views=2)
    # score = sum (10 * stars + views) * floor(100000 / (age + 2)^2)
    expected = {
        month_old_stars: 500 * (100000 // 31**2),
        todays_views: 9 * 25000,
        mixed: 10 * 25000 + 2 * (100000 // 9),
    }
    with db.read() as uow:
        page = FeedQuery(uow.session, FeedRequest(sort=FeedSort.TRENDING), None).page(TODAY)
    assert {row.id: row.score for row in page.items} == expected
    assert [row.id for row in page.items] == [mixed, todays_views, month_old_stars]
    assert _feed(db, sort=FeedSort.TRENDING, period=FeedPeriod.WEEK) == [
        mixed,
        todays_views,
        month_old_stars,
    ]
    assert _feed(db, sort=FeedSort.TRENDING, period=FeedPeriod.TODAY)[:2] == [mixed, todays_views]


def test_a_walk_keeps_its_window_across_midnight(db: Database) -> None:
    alice = make_user(db)
    apps = [make_app(db, alice.user_id) for _ in range(4)]
    for n, app_id in enumerate(apps):
        _add_daily(db, app_id, TODAY, stars=n + 1)
    request = FeedRequest(sort=FeedSort.POPULAR, period=FeedPeriod.TODAY, limit=2)
    with db.read() as uow:
        first = FeedQuery(uow.session, request, None).page(TODAY)
    tomorrow = TODAY + timedelta(days=1)
    with db.read() as uow:
        second = FeedQuery(
            uow.session, FeedRequest(**{**request.__dict__, "cursor": first.next_cursor}), None
        ).page(tomorrow)
    # The cursor pinned "today" to the day the walk began: yesterday's stars still count.
    assert [r.score for r in first.items + second.items] == [4, 3, 2, 1]


def test_framework_filter_and_its_total(client: TestClient, db: Database) -> None:
    alice = make_user(db)
    react = [make_app(db, alice.user_id, framework="react") for _ in range(3)]
    make_app(db, alice.user_id, framework="vue")
    make_app(db, alice.user_id, framework=None)
    body = client.get("/api/apps/public", params={"framework": "React"}).json()
    assert sorted(_ids(body)) == sorted(react)
    assert body["total"] == 3
    assert client.get("/api/apps/public").json()["total"] == 5
    assert client.get("/api/apps/public", params={"framework": "svelte"}).json()["total"] == 0
    for sort in FeedSort:
        walked = walk_feed(client, sort=sort, period="week", framework="react", limit=2)
        assert sorted(walked) == sorted(react)


def _feed_counts(db: Database) -> dict[str, int]:
    with db.read() as uow:
        recount = {
            "all": uow.session.execute(
                select(func.count()).select_from(App).where(text(FEED_PREDICATE))
            ).scalar_one()
        }
        for framework, n in uow.session.execute(
            select(App.framework, func.count())
            .where(text(FEED_PREDICATE), App.framework.is_not(None))
            .group_by(App.framework)
        ):
            recount[f"framework:{framework}"] = n
    return recount


def test_totals_follow_every_change_of_feed_membership(client: TestClient, db: Database) -> None:
    alice = make_user(db)
    apps = [make_app(db, alice.user_id, framework="react") for _ in range(4)]
    changes: list[dict[str, Any]] = [
        {"visibility": Visibility.PRIVATE},
        {"is_archived": True},
        {"deleted_at": NOON},
        {"status": AppStatus.GENERATING},
        {"framework": "vue"},
        {"framework": None},
        {"visibility": Visibility.PUBLIC},
        {"is_archived": False},
        {"deleted_at": None},
        {"status": AppStatus.DEPLOYED},
        {"title": "renamed, still listed"},
    ]
    for n, change in enumerate(changes):
        with db.write() as uow:
            uow.session.execute(update(App).where(App.id == apps[n % 3]).values(**change))
        counts = _feed_counts(db)
        assert client.get("/api/apps/public").json()["total"] == counts["all"], change
        for framework in ("react", "vue"):
            total = client.get("/api/apps/public", params={"framework": framework}).json()["total"]
            assert total == counts.get(f"framework:{framework}", 0), (change, framework)
    with db.write() as uow:
        uow.session.execute(delete(App).where(App.id == apps[3]))  # a purge
    assert client.get("/api/apps/public").json()["total"] == _feed_counts(db)["all"]


def test_search_matches_every_word_as_a_prefix_and_follows_edits(
    client: TestClient, db: Database
) -> None:
    alice = make_user(db)
    todo = make_app(db, alice.user_id, title="Todo list", description="Tracks your chores")
    weather = make_app(db, alice.user_id, title="Weather", description="A forecast for today")
    make_app(db, alice.user_id, title="Todo (private)", visibility=Visibility.PRIVATE)

    def search(q: str, **params: object) -> list[str]:
        response = client.get("/api/apps/public", params={"q": q, **params})
        assert response.status_code == 200, response.text
        return sorted(_ids(response.json()))

    assert search("todo") == [todo]
    assert search("TRAC") == [todo]  # a prefix of "Tracks", in any case
    assert search("forecast weather") == [weather]
    assert search("tod") == sorted([todo, weather])  # "todo" and "today"
    assert search("todo weather") == []
    assert search('todo" OR "weather') == []  # operators are just words
    assert search("todo", sort="trending", period="week") == [todo]
    body = client.get("/api/apps/public", params={"q": "tod"}).json()
    assert body["total"] == 2 and body["total_exact"] is True

    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == todo).values(title="Shopping list"))
    assert search("todo") == []
    assert search("shopping") == [todo]
    with db.write() as uow:
        uow.session.execute(delete(App).where(App.id == weather))
    assert search("forecast") == []


def _search_walk(
    db: Database, request: FeedRequest, now: datetime | None = None
) -> tuple[list[str], set[bool], int]:
    """Every id of a search, page by page; which plans served it; the total it reported."""
    seen: list[str] = []
    plans: set[bool] = set()
    cursor: str | None = None
    while True:
        with db.read() as uow:
            query = FeedQuery(uow.session, replace(request, cursor=cursor), None)
            page = query.page(TODAY, now)
        plans.add(query.walk)
        seen += [row.id for row in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen, plans, page.total


def test_a_search_lists_exactly_the_matching_apps_of_the_feed_in_its_order(
    db: Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The oracle: a search returns the listing without the search, filtered to the apps
    # whose words match, in the same order; whichever plan serves it (a dense search walks
    # the sort's index, a sparse one starts from its matches).
    if backend == "postgresql":  # dense means more matches than the count's cap
        monkeypatch.setattr(feed, "SEARCH_COUNT_CAP", 8)
    alice = make_user(db)
    apps: dict[str, tuple[str, str]] = {}
    for n in range(36):
        title = "Todo board" if n % 4 else "Zebra crossing"
        framework = "react" if n % 3 else "next.js"
        app_id = make_app(
            db,
            alice.user_id,
            title=title,
            framework=framework,
            created_at=NOON - timedelta(hours=n % 7),  # ties broken by id
            star_count=n % 5,
        )
        apps[app_id] = (title, framework)
        _add_daily(db, app_id, TODAY - timedelta(days=n % 3), stars=n % 4, views=n % 6)
    make_app(db, alice.user_id, title="Todo (private)", visibility=Visibility.PRIVATE)
    make_app(db, alice.user_id, title="Todo (draft)", status=AppStatus.DRAFT)
    apps[make_app(db, alice.user_id, title="Todo (next)", framework="next")] = ("Todo", "next")
    plans: set[bool] = set()
    listings = [
        (FeedSort.RECENT, FeedPeriod.ALL, None),
        (FeedSort.POPULAR, FeedPeriod.ALL, None),
        (FeedSort.TRENDING, FeedPeriod.WEEK, None),  # computed live
        (FeedSort.TRENDING, FeedPeriod.WEEK, NOON),  # from the snapshot below
        (FeedSort.POPULAR, FeedPeriod.TODAY, NOON),
    ]
    with db.write() as uow:
        for name in ("trending:week", "popular:today"):
            rankings.refresh(uow.session, name, NOON)
    for sort, period, now in listings:
        for framework in (None, "react", "next.js"):
            plain = FeedRequest(sort=sort, period=period, framework=framework, limit=3)
            every, _, _ = _search_walk(db, plain, now)
            for words in ("todo", "zebra", "cross zeb", "nothing"):
                expected = [
                    app_id
                    for app_id in every
                    if app_id in apps
                    and all(
                        any(w.lower().startswith(t) for w in apps[app_id][0].split())
                        for t in words.split()
                    )
                ]
                request = replace(plain, search_terms=tuple(words.split()))
                found, used, total = _search_walk(db, request, now)
                assert found == expected, (sort, period, framework, words)
                if backend == "sqlite":
                    assert total == len(expected)
                plans |= used
    assert plans == {True, False}  # both plans were exercised


def test_an_app_that_changes_framework_after_a_snapshot_is_listed_once_under_the_new_one(
    db: Database,
) -> None:
    alice = make_user(db)
    moving = make_app(db, alice.user_id, title="Mover", framework="vue")
    staying = make_app(db, alice.user_id, title="Stayer", framework="react")
    for app_id in (moving, staying):
        _add_daily(db, app_id, TODAY, stars=3)
    with db.write() as uow:
        rankings.refresh(uow.session, "popular:today", NOON)
    with db.write() as uow:  # after the snapshot: the snapshot still says "vue"
        uow.session.execute(update(App).where(App.id == moving).values(framework="react"))

    def listing(framework: str, q: str | None = None) -> list[tuple[str, int | None]]:
        terms = (q,) if q else ()
        request = FeedRequest(
            sort=FeedSort.POPULAR, period=FeedPeriod.TODAY, framework=framework, search_terms=terms
        )
        with db.read() as uow:
            page = FeedQuery(uow.session, request, None).page(TODAY, NOON)
        return [(row.id, row.score) for row in page.items]

    # Ranked under react: the app that stayed; the one that moved is in react's score-0
    # tail until the next rebuild, and in no vue listing any more.
    assert listing("react") == [(staying, 3), (moving, 0)]
    assert listing("vue") == []
    assert listing("react", "mover") == [(moving, 0)]
    assert listing("vue", "mover") == []
    with db.write() as uow:
        rankings.refresh(uow.session, "popular:today", NOON)
    assert listing("react") == [(staying, 3), (moving, 3)]  # newest first on a tie


def test_the_search_index_follows_apps_into_and_out_of_the_feed(
    client: TestClient, db: Database
) -> None:
    alice = make_user(db)
    app_id = make_app(db, alice.user_id, title="Kanban board", framework="vue")

    def search(q: str, **params: object) -> tuple[list[str], int]:
        response = client.get("/api/apps/public", params={"q": q, **params})
        assert response.status_code == 200, response.text
        body = response.json()
        return _ids(body), body["total"]

    assert search("kanban") == ([app_id], 1)
    changes: list[tuple[dict[str, object], bool]] = [
        ({"visibility": Visibility.PRIVATE}, False),
        ({"visibility": Visibility.PUBLIC}, True),
        ({"status": AppStatus.GENERATING}, False),
        ({"status": AppStatus.DEPLOYED}, True),
        ({"is_archived": True}, False),
        ({"is_archived": False}, True),
        ({"title": "Scrum board"}, False),
        ({"title": "Kanban board"}, True),
    ]
    for values, listed in changes:
        with db.write() as uow:
            uow.session.execute(update(App).where(App.id == app_id).values(**values))
        assert search("kanban") == (([app_id], 1) if listed else ([], 0)), values
    assert search("kanban", framework="vue") == ([app_id], 1)
    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == app_id).values(framework="react"))
    assert search("kanban", framework="vue") == ([], 0)
    assert search("kanban", framework="react") == ([app_id], 1)
    with db.write() as uow:
        uow.session.execute(delete(App).where(App.id == app_id))
    assert search("kanban") == ([], 0)


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"sort": "hot"}, "sort"),
        ({"period": "year"}, "period"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"q": "!!! ???"}, "letter or digit"),
        ({"framework": "no spaces allowed"}, "framework"),
    ],
)
def test_bad_parameters_are_422_with_a_clear_message(
    client: TestClient, params: dict[str, object], where: str
) -> None:
    response = client.get("/api/apps/public", params=params)
    assert response.status_code == 422
    assert where in response.json()["error"]["message"]


def test_a_cursor_only_works_for_the_listing_that_issued_it(
    client: TestClient, db: Database
) -> None:
    alice = make_user(db)
    for _ in range(3):
        make_app(db, alice.user_id)
    cursor = client.get("/api/apps/public", params={"limit": 1}).json()["next_cursor"]
    assert client.get("/api/apps/public", params={"limit": 1, "cursor": cursor}).status_code == 200
    for other in (
        {"sort": "popular"},
        {"sort": "trending"},
        {"period": "week"},
        {"framework": "react"},
        {"q": "app"},
    ):
        response = client.get("/api/apps/public", params={"cursor": cursor, **other})
        assert response.status_code == 422, other
        assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_feed_page_costs_a_bounded_number_of_statements(db: Database) -> None:
    alice, bob = make_user(db), make_user(db)
    for n in range(30):
        app_id = make_app(db, alice.user_id, framework="react" if n % 2 else "vue")
        _add_daily(db, app_id, TODAY, stars=n % 3, views=n % 5)

    def check(bounds: dict[bool, int], now: datetime | None = None) -> None:
        for sort in FeedSort:
            for limit in (5, 25):
                request = FeedRequest(sort=sort, period=FeedPeriod.WEEK, limit=limit)
                bound = bounds[request.scored]
                with db.read() as uow:
                    uow.session.execute(text("SELECT 1"))  # the transaction has begun
                    for principal in (None, Principal.user(bob.user_id)):
                        service = GalleryService(uow.session, clock=lambda: now or utcnow())
                        with track_queries() as stats:
                            page = service.feed(request, principal, today=TODAY)
                        assert len(page.items) == limit
                        assert stats.statements <= bound, (sort, limit, stats.statements)

    # Counter sorts: the page, which carries the total. Windowed sorts with no snapshot:
    # the try at a fresh snapshot, the snapshot lookup, the live page, the unscored rest
    # and the total.
    check({False: 1, True: 5})
    with db.write() as uow:
        for sort, period in rankings.SCORED_RANKINGS:
            rankings.refresh(uow.session, feed.ranking_name(sort, period), NOON)
    # From a fresh snapshot: the page with its total, and the unscored rest.
    check({False: 1, True: 2}, now=NOON)


def _explain(session: Session, query: tuple[CompiledSelect, dict[str, Any], Any]) -> str:
    """The plan the database chooses for a statement and its values (EXPLAIN [QUERY PLAN])."""
    statement, values, _since = query
    dialect = session.get_bind().dialect
    sql, params = statement.sql(dialect, values)
    prefix = "EXPLAIN QUERY PLAN" if dialect.name == "sqlite" else "EXPLAIN"
    rows = session.connection().exec_driver_sql(f"{prefix} {sql}", params)
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    "sort", [FeedSort.RECENT, FeedSort.UPDATED, FeedSort.POPULAR, FeedSort.VIEWED]
)
@pytest.mark.parametrize("framework", [None, "react"])
def test_a_first_page_is_a_walk_down_the_partial_index(
    db: Database, backend: str, sort: FeedSort, framework: str | None
) -> None:
    alice = make_user(db)
    for framework_ in ("react", "vue"):
        make_apps(db, alice.user_id, ["app"] * 40, framework=framework_, star_count=3)
    make_app(db, alice.user_id, visibility=Visibility.PRIVATE)
    index = f"ix_apps_feed_{'fw_' if framework else ''}{sort.value}"
    with db.write() as uow:
        session = uow.session
        if backend == "postgresql":
            session.execute(text("ANALYZE apps"))
            # On 40 rows a sequential scan is cheapest; forbid it to see whether the
            # partial index *can* serve the query (it cannot if the predicate differs).
            session.execute(text("SET LOCAL enable_seqscan = off"))
        request = FeedRequest(sort=sort, framework=framework)
        plan = _explain(session, FeedQuery(session, request, alice.user_id).counter_statement())
    assert index in plan, plan
    if backend == "sqlite":
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert "Index Scan Backward" in plan and "Sort" not in plan, plan


def test_a_search_uses_the_gin_index_on_postgresql_when_its_matches_are_few(
    db: Database, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite searches its FTS5 table (see the search tests)")
    alice = make_user(db)
    make_apps(db, alice.user_id, [f"app {n}" for n in range(300)])
    make_app(db, alice.user_id, title="zebra crossing")
    with db.primary.connect() as connection, connection.begin() as transaction:
        session = Session(bind=connection)
        session.execute(text("ANALYZE apps"))
        # On 300 rows any index looks as good as another; leave the planner the partial
        # indexes only (rolled back below).
        session.execute(text("DROP INDEX ix_apps_deleted_at"))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        query = FeedQuery(session, FeedRequest(search_terms=("zebra",)), None)
        assert query.total() == (1, True) and not query.walk  # a sparse search
        plan = _explain(session, query.counter_statement())
        transaction.rollback()
    assert "ix_apps_search" in plan, plan
